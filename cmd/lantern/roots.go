package main

// Mozilla's root certificates, used only where the system has none: a
// lantern binary in a FROM-scratch container (deploy/image) or on a bare
// machine still verifies the module proxy, the checksum database and the
// sources' servers over https.
import _ "golang.org/x/crypto/x509roots/fallback"
