package authapi

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// authzTable reads the authorization table from doc.go.
func authzTable(t *testing.T) (callers []string, rows map[string]map[string]string) {
	t.Helper()
	f, err := os.Open("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows = map[string]map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "//\t")
		if !ok {
			if callers != nil {
				break // the table ends at the first line outside the block
			}
			continue
		}
		fields := strings.Fields(line)
		if fields[0] == "RPC" && len(fields) > 1 && fields[1] == "none" {
			callers = fields[1:]
			continue
		}
		if callers != nil && len(fields) == len(callers)+1 {
			row := map[string]string{}
			for i, c := range callers {
				row[c] = fields[i+1]
			}
			rows[fields[0]] = row
		}
	}
	if len(rows) == 0 {
		t.Fatal("no authorization table in doc.go")
	}
	return callers, rows
}

// rpcCalls calls every RPC with a minimal request.
var rpcCalls = map[string]func(ctx context.Context, c authv1.AuthServiceClient) error{
	"Ping": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.Ping(ctx, &authv1.PingRequest{})
		return err
	},
	"GetCertAuthorities": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.GetCertAuthorities(ctx, &authv1.GetCertAuthoritiesRequest{})
		return err
	},
	"Join": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.Join(ctx, &authv1.JoinRequest{})
		return err
	},
	"CompleteSignup": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.CompleteSignup(ctx, &authv1.CompleteSignupRequest{})
		return err
	},
	"Login": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.Login(ctx, &authv1.LoginRequest{})
		return err
	},
	"RenewHostIdentity": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.RenewHostIdentity(ctx, &authv1.RenewHostIdentityRequest{})
		return err
	},
	"CreateJoinToken": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{})
		return err
	},
	"ListJoinTokens": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.ListJoinTokens(ctx, &authv1.ListJoinTokensRequest{})
		return err
	},
	"DeleteJoinToken": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.DeleteJoinToken(ctx, &authv1.DeleteJoinTokenRequest{})
		return err
	},
	"UpsertUser": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.UpsertUser(ctx, &authv1.UpsertUserRequest{})
		return err
	},
	"ListUsers": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.ListUsers(ctx, &authv1.ListUsersRequest{})
		return err
	},
	"DeleteUser": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.DeleteUser(ctx, &authv1.DeleteUserRequest{})
		return err
	},
	"UpsertRole": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.UpsertRole(ctx, &authv1.UpsertRoleRequest{})
		return err
	},
	"ListRoles": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.ListRoles(ctx, &authv1.ListRolesRequest{})
		return err
	},
	"DeleteRole": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.DeleteRole(ctx, &authv1.DeleteRoleRequest{})
		return err
	},
	"SignIdentity": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.SignIdentity(ctx, &authv1.SignIdentityRequest{})
		return err
	},
	"Heartbeat": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.Heartbeat(ctx, &authv1.HeartbeatRequest{})
		return err
	},
	"ListServers": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.ListServers(ctx, &authv1.ListServersRequest{})
		return err
	},
	"WatchServers": func(ctx context.Context, c authv1.AuthServiceClient) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s, err := c.WatchServers(ctx, &authv1.WatchServersRequest{})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	},
	"EmitAuditEvent": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.EmitAuditEvent(ctx, &authv1.EmitAuditEventRequest{})
		return err
	},
	"SearchAuditEvents": func(ctx context.Context, c authv1.AuthServiceClient) error {
		_, err := c.SearchAuditEvents(ctx, &authv1.SearchAuditEventsRequest{})
		return err
	},
}

// TestAuthorization calls every RPC as every kind of caller and checks
// the outcome against the table in doc.go, and the table against the
// interceptor's policy.
func TestAuthorization(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: -1})
	other := startServer(t, nil, &Config{ClusterName: "elsewhere"})
	ctx := testCtx(t)
	issue := func(kind, name string) *Credentials {
		c, err := ts.IssueIdentity(ctx, kind, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := ts.client(t, ts.Admin).API().UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "bob", Password: "bob's password"}); err != nil {
		t.Fatal(err)
	}
	// An expired user certificate, properly signed by this cluster.
	key := newECKey(t)
	now := time.Now()
	der, err := ts.cas[CAUser].signTLS(certRequest{pub: key.Public(), id: &Identity{Kind: KindAdmin, Name: "old", Cluster: ts.cluster}, notBefore: now.Add(-2 * time.Hour), notAfter: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expiredCreds, err := newCredentials(der, "", ts.authorities(), key, ts.Admin.SSHKey)
	if err != nil {
		t.Fatal(err)
	}
	callers := map[string]*Credentials{
		"none":    nil,
		"user":    issue("user", "bob"),
		"agent":   issue("agent", "agent-1"),
		"proxy":   issue("proxy", "proxy-1"),
		"auth":    issue("auth", "auth-2"),
		"admin":   ts.Admin,
		"expired": expiredCreds,
		"foreign": other.Admin,
	}
	// The foreign caller trusts this cluster's host CA (so that it is the
	// server that refuses it, not the client).
	foreign := *other.Admin
	foreign.HostCAs = ts.Admin.HostCAs
	foreign.Cluster = ts.cluster
	callers["foreign"] = &foreign

	names, table := authzTable(t)
	for method := range policy {
		short := method[strings.LastIndex(method, "/")+1:]
		if _, ok := table[short]; !ok {
			t.Errorf("RPC %s is missing from the table in doc.go", short)
		}
		if _, ok := rpcCalls[short]; !ok {
			t.Errorf("RPC %s is missing from rpcCalls", short)
		}
	}
	if len(table) != len(policy) {
		t.Errorf("doc.go lists %d RPCs, the policy %d", len(table), len(policy))
	}
	clients := map[string]authv1.AuthServiceClient{}
	for _, name := range names {
		creds, ok := callers[name]
		if !ok {
			t.Fatalf("no caller %q", name)
		}
		clients[name] = ts.client(t, creds).API()
	}
	for rpc, row := range table {
		for _, caller := range names {
			t.Run(rpc+"/"+caller, func(t *testing.T) {
				want := row[caller]
				err := rpcCalls[rpc](ctx, clients[caller])
				code := status.Code(err)
				var got string
				switch {
				case code == codes.PermissionDenied && strings.Contains(status.Convert(err).Message(), "may not call"):
					got = "deny"
				case code == codes.Unavailable:
					got = "tls"
				default:
					got = "allow"
				}
				if got != want {
					t.Fatalf("%s as %s: %s (err %v), table says %s", rpc, caller, got, err, want)
				}
				if got == "deny" && !errors.Is(err, ErrAccessDenied) {
					t.Fatalf("denial %v does not wrap ErrAccessDenied", err)
				}
				// The policy agrees with the table for certificate holders.
				if caller != "expired" && caller != "foreign" {
					var id *Identity
					if c := callers[caller]; c != nil {
						id = c.Identity
					}
					if Allowed("/sallyport.auth.v1.AuthService/"+rpc, id) != (want == "allow") {
						t.Fatalf("Allowed disagrees with the table")
					}
				}
			})
		}
	}
}
