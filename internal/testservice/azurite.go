package testservice

import (
	"strconv"
	"testing"
)

// The well-known Azurite development account and its public key.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is an Azurite blob service (Azure Blob Storage emulator) started
// for a test.
type Azurite struct {
	*Process
	Addr     string // "127.0.0.1:PORT"
	Endpoint string // "http://127.0.0.1:PORT/devstoreaccount1": the account's service URL
	Account  string // AzuriteAccount
	Key      string // AzuriteKey
	DataDir  string
}

// StartAzurite starts azurite-blob on a free loopback port with telemetry
// off and an empty data directory. It is stopped when the test ends.
func StartAzurite(t testing.TB) *Azurite {
	t.Helper()
	port := FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	p := Start(t, "azurite-blob", []string{
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--location", dir, "--skipApiVersionCheck", "--disableTelemetry", "--silent",
	}, nil, addr)
	return &Azurite{Process: p, Addr: addr, Endpoint: "http://" + addr + "/" + AzuriteAccount, Account: AzuriteAccount, Key: AzuriteKey, DataDir: dir}
}
