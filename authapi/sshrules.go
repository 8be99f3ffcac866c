package authapi

import (
	"encoding/json"
	"fmt"
	"strings"
)

// SSH user certificate extensions set by the Auth Service.
const (
	// ExtCluster names the issuing cluster.
	ExtCluster = "sallyport-cluster@sallyport"
	// ExtRoles lists the user's role names, comma-separated.
	ExtRoles = "sallyport-roles@sallyport"
	// ExtRules carries the SSH rules of the user's roles (see SSHRules),
	// so that a node can check its own labels without calling auth.
	ExtRules = "sallyport-rules@sallyport"
)

// MaxSSHRulesSize bounds the ExtRules extension: Login refuses to issue an
// SSH certificate whose rules would be larger, and ParseSSHRules refuses
// to read one.
const MaxSSHRulesSize = 16 << 10

// sshRulesVersion is the version of the ExtRules encoding.
const sshRulesVersion = 1

// sshRule is one role in the ExtRules extension: its name, logins and node
// label selector, with short keys.
type sshRule struct {
	Name       string              `json:"n"`
	Logins     []string            `json:"l,omitempty"`
	NodeLabels map[string][]string `json:"s,omitempty"`
}

type sshRules struct {
	V     int       `json:"v"`
	Rules []sshRule `json:"r"`
}

// SSHRules encodes the SSH part of roles (name, logins, node labels) as the
// value of the ExtRules extension: compact JSON,
// {"v":1,"r":[{"n":"dev","l":["root"],"s":{"env":["dev"]}}]}. It fails with
// an error wrapping ErrInvalidArgument when the result would exceed
// MaxSSHRulesSize.
func SSHRules(roles []Role) (string, error) {
	out := sshRules{V: sshRulesVersion, Rules: make([]sshRule, 0, len(roles))}
	for _, r := range roles {
		out.Rules = append(out.Rules, sshRule{Name: r.Name, Logins: r.Logins, NodeLabels: r.NodeLabels})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("%w: ssh rules: %v", ErrInvalidArgument, err)
	}
	if len(b) > MaxSSHRulesSize {
		return "", fmt.Errorf("%w: the roles' ssh rules take %d bytes, more than %d", ErrInvalidArgument, len(b), MaxSSHRulesSize)
	}
	return string(b), nil
}

// ParseSSHRules decodes the value of the ExtRules extension into roles
// that carry only Name, Logins and NodeLabels. The error wraps
// ErrInvalidIdentity.
func ParseSSHRules(s string) ([]Role, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: no ssh rules", ErrInvalidIdentity)
	}
	if len(s) > MaxSSHRulesSize {
		return nil, fmt.Errorf("%w: ssh rules larger than %d bytes", ErrInvalidIdentity, MaxSSHRulesSize)
	}
	var in sshRules
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("%w: ssh rules: %v", ErrInvalidIdentity, err)
	}
	if in.V != sshRulesVersion {
		return nil, fmt.Errorf("%w: unknown ssh rules version %d", ErrInvalidIdentity, in.V)
	}
	roles := make([]Role, 0, len(in.Rules))
	for _, r := range in.Rules {
		roles = append(roles, Role{Name: r.Name, Logins: r.Logins, NodeLabels: r.NodeLabels})
	}
	return roles, nil
}

// CheckSSHLogin decides, from a verified SSH user certificate's extensions
// alone, whether login is granted on a node with nodeLabels: one of the
// roles in ExtRules must list the login and select the node
// (Role.CanLogin). A certificate without the extension is refused. The
// error wraps ErrAccessDenied.
func CheckSSHLogin(extensions map[string]string, login string, nodeLabels map[string]string) error {
	roles, err := ParseSSHRules(extensions[ExtRules])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAccessDenied, err)
	}
	for i := range roles {
		if roles[i].CanLogin(login, nodeLabels) {
			return nil
		}
	}
	names := make([]string, 0, len(roles))
	for _, r := range roles {
		names = append(names, r.Name)
	}
	return fmt.Errorf("%w: roles [%s] do not grant login %q on this node", ErrAccessDenied, strings.Join(names, ","), login)
}
