package proxy

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// Node is a live agent as the proxy's cache knows it (from the Auth
// Service's presence watch).
type Node struct {
	// HostID is the agent's host ID (the tunnel's agent ID).
	HostID string
	// Name is the agent's node name.
	Name string
	// Addrs are the agent's direct addresses (empty when it is reached
	// only through a reverse tunnel).
	Addrs []string
	// Labels are the agent's labels.
	Labels map[string]string
}

// cache keeps the agents and roles the proxy needs to route and authorise,
// so that it keeps serving while auth is briefly unreachable.
type cache struct {
	mu     sync.RWMutex
	nodes  map[string]Node // by host ID
	synced bool
	roles  map[string]authapi.Role
	rolesT time.Time
}

func newCache() *cache {
	return &cache{nodes: map[string]Node{}, roles: map[string]authapi.Role{}}
}

func (c *cache) setServers(servers []*authv1.Server) {
	nodes := make(map[string]Node, len(servers))
	for _, s := range servers {
		if s.GetKind() != authapi.RoleAgent {
			continue
		}
		nodes[s.GetName()] = Node{HostID: s.GetName(), Name: s.GetHostname(), Addrs: s.GetAddrs(), Labels: s.GetLabels()}
	}
	c.mu.Lock()
	c.nodes = nodes
	c.synced = true
	c.mu.Unlock()
}

// find returns the node whose host ID or name is host (case-insensitive
// for names, with or without the cluster suffix).
func (c *cache) find(host, cluster string) (Node, bool) {
	host = strings.TrimSuffix(host, ".")
	if cluster != "" {
		host = strings.TrimSuffix(host, "."+cluster)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if n, ok := c.nodes[host]; ok {
		return n, true
	}
	for _, n := range c.nodes {
		if strings.EqualFold(n.Name, host) {
			return n, true
		}
	}
	return Node{}, false
}

func (c *cache) list() []Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}

func (c *cache) setRoles(roles []*authv1.Role, now time.Time) {
	m := make(map[string]authapi.Role, len(roles))
	for _, r := range roles {
		m[r.GetName()] = authapi.RoleFromProto(r)
	}
	c.mu.Lock()
	c.roles = m
	c.rolesT = now
	c.mu.Unlock()
}

func (c *cache) role(name string) (authapi.Role, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.roles[name]
	return r, ok
}

// loadRoles reloads the roles from auth; on failure the old set stays.
func (s *Service) loadRoles(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := s.auth.API().ListRoles(ctx, &authv1.ListRolesRequest{})
	if err != nil {
		return err
	}
	s.cache.setRoles(resp.GetRoles(), time.Now())
	return nil
}

// nodeAllowed reports whether one of the roles grants some login on a node
// with labels. The login itself is checked by the agent's SSH server (the
// proxy cannot see it on a jump connection).
func (s *Service) nodeAllowed(roles []string, labels map[string]string) bool {
	for _, name := range roles {
		r, ok := s.cache.role(name)
		if !ok {
			continue
		}
		if len(r.Logins) > 0 && authapi.MatchLabels(r.NodeLabels, labels) {
			return true
		}
	}
	return false
}
