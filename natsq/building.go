package natsq

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern"
)

// SubjectBuilding is the prefix of the subjects where builders say which
// jobs they are building, lantern.building.<builder key id hex>. It is core
// NATS, kept by no stream: the scheduler shows it (a job's builder reads
// "building" rather than "queued") and nothing else depends on it, so a
// lost message costs nothing but a line of progress.
const SubjectBuilding = "lantern.building"

// MaxBuildingMessage bounds a message on a building subject: a job id and a
// flag fit in far less.
const MaxBuildingMessage = 256

// BuildingSubject returns the subject where builder says what it builds,
// lantern.building.<64 hex of the key id>.
func BuildingSubject(builder lantern.Digest) (string, error) {
	if builder.IsZero() {
		return "", errors.New("builder key id is empty")
	}
	return SubjectBuilding + "." + builder.Hex(), nil
}

// PublishBuilding says, on the builder's own building subject, that a
// worker of it started (or, building false, stopped without an answer:
// handed back) building job. It is fire and forget: nobody confirms it.
func (q *Queue) PublishBuilding(ctx context.Context, builder lantern.Digest, job string, building bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	subj, err := BuildingSubject(builder)
	if err != nil {
		return fmt.Errorf("publish building %s: %w", job, err)
	}
	if err := checkToken(job); err != nil {
		return fmt.Errorf("publish building: job %q: %w", job, err)
	}
	data := fmt.Appendf(nil, `{"job":%q,"building":%t}`, job, building)
	if err := q.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("publish building %s: %w", job, err)
	}
	return nil
}

// WatchBuilding calls handle with what each builder says it builds, until
// ctx ends. The builder is the one of the subject, which only that
// builder's NATS user may publish on (RolePermissions); a message that is
// not one PublishBuilding makes is dropped. handle is called from one
// goroutine, in order.
func (q *Queue) WatchBuilding(ctx context.Context, handle func(builder lantern.Digest, job string, building bool)) error {
	sub, err := q.nc.Subscribe(SubjectBuilding+".*", func(m *nats.Msg) {
		builder, job, building, err := ParseBuilding(m.Subject, m.Data)
		if err != nil {
			q.log.Debug("a message on a building subject that is not one", "subject", m.Subject, "error", err)
			return
		}
		handle(builder, job, building)
	})
	if err != nil {
		return fmt.Errorf("watch building: %w", err)
	}
	defer sub.Unsubscribe()
	// A slow scheduler drops progress rather than holding the connection.
	if err := sub.SetPendingLimits(1024, 1024*MaxBuildingMessage); err != nil {
		return fmt.Errorf("watch building: %w", err)
	}
	<-ctx.Done()
	return nil
}

// buildingMessage is the one shape of a building message, exactly as
// PublishBuilding writes it: nothing else is read.
var buildingMessage = regexp.MustCompile(`^\{"job":"(j[0-9a-f]{32})","building":(true|false)\}$`)

// ParseBuilding reads a message of a building subject: the builder of the
// subject, and the job and flag of the body, which must be exactly what
// PublishBuilding writes.
func ParseBuilding(subject string, data []byte) (builder lantern.Digest, job string, building bool, err error) {
	hexID, ok := strings.CutPrefix(subject, SubjectBuilding+".")
	if !ok {
		return builder, "", false, fmt.Errorf("subject: want %s.<builder key id hex>", SubjectBuilding)
	}
	if builder, err = lantern.DigestFromHex(hexID); err != nil {
		return builder, "", false, fmt.Errorf("subject: %w", err)
	}
	if len(data) > MaxBuildingMessage {
		return builder, "", false, fmt.Errorf("%d bytes, more than %d", len(data), MaxBuildingMessage)
	}
	m := buildingMessage.FindSubmatch(data)
	if m == nil {
		return builder, "", false, fmt.Errorf(`%q: want {"job":"j<32 hex>","building":true|false}`, data)
	}
	return builder, string(m[1]), string(m[2]) == "true", nil
}
