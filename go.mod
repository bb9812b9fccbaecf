module github.com/lanternfarm/lantern

go 1.24.0

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/secure-systems-lab/go-securesystemslib v0.9.1 // indirect
	golang.org/x/crypto v0.40.0 // indirect
	golang.org/x/sys v0.41.0 // indirect
	golang.org/x/term v0.33.0 // indirect
)
