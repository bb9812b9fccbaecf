// Package deploy holds what an operator runs — compose/, kubernetes/,
// systemd/, image/ — and these tests, which check each file with the tool
// that reads it: Debian's docker-compose for the Compose file, the
// Kubernetes API's own Go types (strictly, offline) for the manifests,
// systemd-analyze verify and security for the units.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// tool is the path of a program the test needs: under CI its absence fails
// the test (make deps installs it), elsewhere it skips.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (CI is set): make deps installs it", name)
		}
		t.Skipf("%s not found: make deps installs it", name)
	}
	return p
}

// composeConfig runs docker-compose config on file and returns the
// resolved file it prints.
func composeConfig(t *testing.T, file string) (map[string]any, error) {
	t.Helper()
	c := exec.Command(tool(t, "docker-compose"), "-f", file, "config")
	c.Env = append(os.Environ(), "LANTERN_IMAGE=", "LANTERN_API_PORT=")
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("docker-compose -f %s config: %v\n%s", file, err, stderr.Bytes())
	}
	var m map[string]any
	if err := yaml.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("docker-compose config printed what is not YAML: %v\n%s", err, out)
	}
	return m, nil
}

func TestComposeFile(t *testing.T) {
	cfg, err := composeConfig(t, filepath.Join("compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	services, _ := cfg["services"].(map[string]any)
	var names []string
	for n := range services {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"nats-1", "nats-2", "nats-3", "net", "scheduler", "worker-1", "worker-2"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %q, want %q", names, want)
	}
	words := func(s map[string]any, key string) []string {
		var out []string
		l, _ := s[key].([]any)
		for _, w := range l {
			out = append(out, fmt.Sprint(w))
		}
		return out
	}
	volumes := func(s map[string]any) string {
		var b strings.Builder
		l, _ := s["volumes"].([]any)
		for _, v := range l {
			fmt.Fprintln(&b, v)
		}
		return b.String()
	}
	// init.sh's node N listens on 127.0.0.1:422(N+1), routes on 622(N+1).
	init, err := os.ReadFile(filepath.Join("compose", "init.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"--nats-listen \"127.0.0.1:422$((n + 1))\"", "--nats-name \"n$n\"", "$FARM/nats/n$n.conf"} {
		if !bytes.Contains(init, []byte(s)) {
			t.Errorf("init.sh has no %s: the Compose file's nodes and URLs assume it", s)
		}
	}
	for _, n := range names {
		s := services[n].(map[string]any)
		if s["image"] != "lantern:latest" {
			t.Errorf("%s: image %v, want the Lantern image (lantern:latest)", n, s["image"])
		}
		if n != "net" && s["network_mode"] != "service:net" {
			t.Errorf("%s: network_mode %v, want service:net (routes and clients on loopback)", n, s["network_mode"])
		}
		args := strings.Join(append(words(s, "entrypoint"), words(s, "command")...), " ")
		switch {
		case n == "net":
			if args != "/usr/local/bin/pause" || s["ports"] == nil || s["restart"] != "unless-stopped" {
				t.Errorf("net runs %q, ports %v, restart %v: want the pause that holds the namespace, the API's port, never restarted", args, s["ports"], s["restart"])
			}
		case strings.HasPrefix(n, "nats-"):
			if want := "/usr/local/bin/nats-server -c /etc/lantern/nats/n" + n[5:] + ".conf"; args != want {
				t.Errorf("%s runs %q, want %q", n, args, want)
			}
		case n == "scheduler":
			for _, w := range []string{"scheduler", "--nats-replicas=3", "--data=/var/lib/lantern"} {
				if !strings.Contains(args, w) {
					t.Errorf("scheduler runs %q: no %s", args, w)
				}
			}
		default:
			for _, w := range []string{"worker", "--docker", "--docker-host=unix:///var/run/docker.sock", "--key=", "--creds=", "--claim-key="} {
				if !strings.Contains(args, w) {
					t.Errorf("%s runs %q: no %s", n, args, w)
				}
			}
			if v := volumes(s); !strings.Contains(v, "/var/run/docker.sock") || !strings.Contains(v, "builder-"+n[7:]+".creds") {
				t.Errorf("%s: volumes %s: want the Engine's socket and builder-%s's credentials", n, v, n[7:])
			}
		}
		if n != "net" && !strings.HasPrefix(n, "nats-") {
			env, _ := s["environment"].(map[string]any)
			if u := fmt.Sprint(env["LANTERN_NATS_URL"]); strings.Count(u, "nats://127.0.0.1:42") != 3 {
				t.Errorf("%s: LANTERN_NATS_URL %q, want the three nodes", n, u)
			}
		}
	}
}

// TestComposeRefusesBroken: the check fails on what Compose cannot run —
// a misspelled key, a namespace of no service.
func TestComposeRefusesBroken(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join("compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"misspelled key":        {"    working_dir: /nats\n    depends_on: [net, nats-1]", "    workdir: /nats\n    depends_on: [net, nats-1]"},
		"namespace of nothing":  {"network_mode: service:net", "network_mode: service:nowhere"},
		"volume never declared": {"      - nats-3:/nats", "      - nats-4:/nats"},
	} {
		t.Run(name, func(t *testing.T) {
			if !bytes.Contains(orig, []byte(edit[0])) {
				t.Fatalf("the Compose file has no %q to break", edit[0])
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "docker-compose.yml")
			if err := os.WriteFile(f, bytes.Replace(orig, []byte(edit[0]), []byte(edit[1]), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := composeConfig(t, f); err == nil {
				t.Fatalf("docker-compose config took a Compose file with %s", name)
			}
		})
	}
}

// manifest is one object of a manifest file, decoded strictly into its
// kind's API type.
type manifest struct {
	file, kind, name string
	obj              any
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeManifests decodes every object of data strictly: a field the API
// type does not have, a value of the wrong type or a quantity that does not
// parse is an error.
func decodeManifests(file string, data []byte) ([]manifest, error) {
	var out []manifest
	for i, doc := range docSep.Split(string(data), -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s, document %d: %v", file, i+1, err)
		}
		if head.Kind == "" {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			return nil, fmt.Errorf("%s, document %d: no kind", file, i+1)
		}
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case "v1 Service":
			obj = &corev1.Service{}
		case "v1 PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "apps/v1 StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		default:
			return nil, fmt.Errorf("%s, document %d: %s %s: a kind this test does not know", file, i+1, head.APIVersion, head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s, %s %s: %v", file, head.Kind, head.Metadata.Name, err)
		}
		out = append(out, manifest{file: file, kind: head.Kind, name: head.Metadata.Name, obj: obj})
	}
	return out, nil
}

func readManifests(t *testing.T, dir string) []manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var all []manifest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeManifests(f, data)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m...)
	}
	return all
}

// checkManifests checks what the API server's schema does not: that the
// objects fit together.
func checkManifests(all []manifest, buildkitVersion string) []error {
	var errs []error
	bad := func(m manifest, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s (%s): %s", m.kind, m.name, filepath.Base(m.file), fmt.Sprintf(format, args...)))
	}
	services := map[string]*corev1.Service{}
	claims := map[string]bool{}
	type pod struct {
		m      manifest
		labels map[string]string
		spec   *corev1.PodSpec
	}
	var pods []pod
	var sts *appsv1.StatefulSet
	for _, m := range all {
		switch o := m.obj.(type) {
		case *corev1.Service:
			services[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			claims[o.Name] = true
		case *appsv1.StatefulSet:
			sts = o
			if !selects(o.Spec.Selector.MatchLabels, o.Spec.Template.Labels) {
				bad(m, "selector %v does not select its pods %v", o.Spec.Selector.MatchLabels, o.Spec.Template.Labels)
			}
			pods = append(pods, pod{m, o.Spec.Template.Labels, &o.Spec.Template.Spec})
		case *appsv1.Deployment:
			if !selects(o.Spec.Selector.MatchLabels, o.Spec.Template.Labels) {
				bad(m, "selector %v does not select its pods %v", o.Spec.Selector.MatchLabels, o.Spec.Template.Labels)
			}
			pods = append(pods, pod{m, o.Spec.Template.Labels, &o.Spec.Template.Spec})
		}
	}
	for _, s := range services {
		n := 0
		for _, p := range pods {
			if selects(s.Spec.Selector, p.labels) {
				n++
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("Service %s selects no pod (selector %v)", s.Name, s.Spec.Selector))
		}
	}
	var natsURLs []string
	if sts == nil {
		errs = append(errs, fmt.Errorf("no StatefulSet of NATS"))
	} else {
		if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
			errs = append(errs, fmt.Errorf("StatefulSet %s: replicas %d, want 3", sts.Name, ptrOr(sts.Spec.Replicas, 1)))
		}
		if s := services[sts.Spec.ServiceName]; s == nil || s.Spec.ClusterIP != "None" {
			errs = append(errs, fmt.Errorf("StatefulSet %s: serviceName %q is not a headless Service here", sts.Name, sts.Spec.ServiceName))
		}
		if len(sts.Spec.VolumeClaimTemplates) == 0 {
			errs = append(errs, fmt.Errorf("StatefulSet %s: no volumeClaimTemplates: JetStream would keep nothing", sts.Name))
		}
		for _, v := range sts.Spec.VolumeClaimTemplates {
			claims[v.Name] = true
		}
		for i := 0; sts.Spec.Replicas != nil && i < int(*sts.Spec.Replicas); i++ {
			natsURLs = append(natsURLs, fmt.Sprintf("nats://%s-%d.%s:4222", sts.Name, i, sts.Spec.ServiceName))
		}
	}
	for _, p := range pods {
		vols := map[string]corev1.Volume{}
		for _, v := range p.spec.Volumes {
			vols[v.Name] = v
			if v.PersistentVolumeClaim != nil && !claims[v.PersistentVolumeClaim.ClaimName] {
				bad(p.m, "volume %s: no PersistentVolumeClaim %q here", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
		for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
			switch {
			case c.Image == "lantern:latest":
			case c.Image == "moby/buildkit:"+buildkitVersion:
			default:
				bad(p.m, "container %s: image %q: want lantern:latest, or moby/buildkit:%s (tools/buildkit's)", c.Name, c.Image, buildkitVersion)
			}
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
			}
			for _, vm := range c.VolumeMounts {
				if _, ok := vols[vm.Name]; !ok && !claims[vm.Name] {
					bad(p.m, "container %s mounts %q, a volume the pod does not have", c.Name, vm.Name)
				}
				for _, ref := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(vm.SubPathExpr, -1) {
					if !env[ref[1]] {
						bad(p.m, "container %s: subPathExpr %q names $(%s), which it does not set", c.Name, vm.SubPathExpr, ref[1])
					}
				}
			}
			args := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
			if c.Image == "lantern:latest" && (strings.HasPrefix(args, "scheduler") || strings.HasPrefix(args, "worker")) {
				if want := "--nats=" + strings.Join(natsURLs, ","); !strings.Contains(args, want) {
					bad(p.m, "container %s runs %q: want %s, every node of the StatefulSet", c.Name, args, want)
				}
			}
			if strings.HasPrefix(args, "scheduler") && !strings.Contains(args, "--nats-replicas=3") {
				bad(p.m, "the scheduler runs %q: want --nats-replicas=3", args)
			}
			if strings.HasPrefix(args, "scheduler") {
				mounted := false
				for _, vm := range c.VolumeMounts {
					if v := vols[vm.Name]; v.PersistentVolumeClaim != nil && vm.MountPath == "/var/lib/lantern" {
						mounted = true
					}
				}
				if !mounted {
					bad(p.m, "the scheduler's data (/var/lib/lantern) is not on a PersistentVolumeClaim")
				}
			}
			if strings.HasPrefix(args, "worker") && !strings.Contains(args, "--buildkit=unix:///run/buildkit/buildkitd.sock") {
				bad(p.m, "the worker runs %q: want --buildkit=unix:///run/buildkit/buildkitd.sock, its sidecar", args)
			}
		}
	}
	return errs
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// buildkitVersion is the BuildKit that tools/buildkit pins.
func buildkitVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "tools", "buildkit", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == "github.com/moby/buildkit" {
			return r.Mod.Version
		}
	}
	t.Fatal("tools/buildkit/go.mod requires no github.com/moby/buildkit")
	return ""
}

func TestKubernetesManifests(t *testing.T) {
	all := readManifests(t, "kubernetes")
	kinds := map[string]int{}
	for _, m := range all {
		kinds[m.kind]++
	}
	if kinds["StatefulSet"] != 1 || kinds["Deployment"] != 3 || kinds["PersistentVolumeClaim"] != 1 {
		t.Errorf("kinds %v: want NATS's StatefulSet, the scheduler's and two workers' Deployments, the scheduler's claim", kinds)
	}
	for _, err := range checkManifests(all, buildkitVersion(t)) {
		t.Error(err)
	}
}

// TestKubernetesRefusesBroken: the checks fail on manifests a cluster
// would refuse or run wrong.
func TestKubernetesRefusesBroken(t *testing.T) {
	v := buildkitVersion(t)
	for name, edit := range map[string]struct{ file, from, to string }{
		"misspelled field":    {"nats.yaml", "  replicas: 3", "  replica: 3"},
		"bad quantity":        {"nats.yaml", "storage: 10Gi", "storage: ten gigs"},
		"selector of nothing": {"scheduler.yaml", "    matchLabels: {app.kubernetes.io/name: lantern-scheduler}", "    matchLabels: {app.kubernetes.io/name: lantern-sched}"},
		"two NATS nodes":      {"scheduler.yaml", ",nats://lantern-nats-2.lantern-nats:4222\n", "\n"},
		"undeclared claim":    {"scheduler.yaml", "claimName: lantern-scheduler-data", "claimName: lantern-data"},
		"another buildkit":    {"workers.yaml", "moby/buildkit:" + v, "moby/buildkit:latest"},
		"missing volume":      {"workers.yaml", "        - {name: buildkit-run, emptyDir: {}}\n", ""},
		"subPathExpr unset":   {"nats.yaml", "subPathExpr: $(POD_NAME).conf", "subPathExpr: $(NODE).conf"},
		"one replica of NATS": {"nats.yaml", "  replicas: 3", "  replicas: 1"},
	} {
		t.Run(name, func(t *testing.T) {
			var all []manifest
			files, _ := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Base(f) == edit.file {
					if !bytes.Contains(data, []byte(edit.from)) {
						t.Fatalf("%s has no %q to break", f, edit.from)
					}
					data = bytes.Replace(data, []byte(edit.from), []byte(edit.to), 1)
				}
				m, err := decodeManifests(f, data)
				if err != nil {
					t.Logf("refused: %v", err)
					return
				}
				all = append(all, m...)
			}
			errs := checkManifests(all, v)
			if len(errs) == 0 {
				t.Fatalf("manifests with %s pass the checks", name)
			}
			t.Logf("refused: %v", errs[0])
		})
	}
}

// systemdRoot is a root for systemd-analyze --root: the units under test in
// etc/systemd/system, the system's own units (sysinit.target and the rest)
// and, for ExecStart, a lantern.
func systemdRoot(t *testing.T, units map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc/systemd/system", "usr/local/bin", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy the system's units: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(root, "usr/local/bin/lantern"), "../cmd/lantern").CombinedOutput(); err != nil {
		t.Fatalf("go build lantern: %v\n%s", err, out)
	}
	for n, data := range units {
		if err := os.WriteFile(filepath.Join(root, "etc/systemd/system", n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// analyze runs systemd-analyze; anything it prints is a finding.
func analyze(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command(tool(t, "systemd-analyze"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if args[0] == "verify" && len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("systemd-analyze %s:\n%s", strings.Join(args, " "), out)
	}
	return nil
}

// The most exposure systemd-analyze security may score each unit (0 to 100,
// shown as 0.0 to 10.0): the worker runs buildkitd as root.
var exposure = map[string]string{"lantern-scheduler.service": "30", "lantern-worker.service": "75"}

func TestSystemdUnits(t *testing.T) {
	tool(t, "systemd-analyze")
	units := map[string][]byte{}
	for n := range exposure {
		data, err := os.ReadFile(filepath.Join("systemd", n))
		if err != nil {
			t.Fatal(err)
		}
		units[n] = data
		for _, d := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet="} {
			if !bytes.Contains(data, []byte("\n"+d)) {
				t.Errorf("%s: no %s", n, d)
			}
		}
	}
	root := systemdRoot(t, units)
	for n, max := range exposure {
		if err := analyze(t, "verify", "--man=no", "--root="+root, n); err != nil {
			t.Error(err)
		}
		if err := analyze(t, "security", "--offline=yes", "--no-pager", "--root="+root, "--threshold="+max, n); err != nil {
			t.Errorf("%s is more exposed than %s: %v", n, max, err)
		}
	}
}

// TestSystemdRefusesBroken: a misspelled directive, a hardening directive
// dropped, a binary that is not there: each is a finding.
func TestSystemdRefusesBroken(t *testing.T) {
	tool(t, "systemd-analyze")
	orig, err := os.ReadFile(filepath.Join("systemd", "lantern-scheduler.service"))
	if err != nil {
		t.Fatal(err)
	}
	broken := map[string][]byte{
		"misspelled.service": bytes.Replace(orig, []byte("\nProtectHome=yes"), []byte("\nProtectHomme=yes"), 1),
		"nobinary.service":   bytes.Replace(orig, []byte("ExecStart=/usr/local/bin/lantern"), []byte("ExecStart=/usr/local/bin/lanterne"), 1),
		"exposed.service": regexp.MustCompile(`(?m)^(NoNewPrivileges|CapabilityBoundingSet|ProtectSystem|SystemCallFilter|ProtectKernel\w+|RestrictAddressFamilies|PrivateDevices|DynamicUser)=.*\n`).
			ReplaceAll(orig, nil),
	}
	root := systemdRoot(t, broken)
	if err := analyze(t, "verify", "--man=no", "--root="+root, "misspelled.service"); err == nil {
		t.Error("systemd-analyze verify took ProtectHomme=yes")
	}
	if err := analyze(t, "verify", "--man=no", "--root="+root, "nobinary.service"); err == nil {
		t.Error("systemd-analyze verify took an ExecStart of no binary")
	}
	if err := analyze(t, "security", "--offline=yes", "--no-pager", "--root="+root, "--threshold="+exposure["lantern-scheduler.service"], "exposed.service"); err == nil {
		t.Error("systemd-analyze security took the scheduler's unit without its hardening")
	}
}
