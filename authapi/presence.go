package authapi

import (
	"context"
	"errors"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// Announce heartbeats srv every interval, with a TTL of three intervals
// (at least one second), until ctx is done; then it returns ctx's error. Failed heartbeats are
// logged and retried at the next tick; a refusal (ErrAccessDenied,
// ErrInvalidArgument) ends it with that error. interval zero means 20s.
func (c *Client) Announce(ctx context.Context, srv *authv1.Server, interval time.Duration) error {
	if interval <= 0 {
		interval = 20 * time.Second
	}
	ttl := max(3*interval, time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, err := c.api.Heartbeat(ctx, &authv1.HeartbeatRequest{Server: srv, Ttl: durationpb.New(ttl)})
		if errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrInvalidArgument) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			c.log.Warn("heartbeat failed", "kind", srv.Kind, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// WatchServers follows the live proxies or agents (kind "proxy", "agent",
// or "" for both) and calls fn with the whole current set, sorted by kind
// and name, after every change. It reconnects (with backoff) when the
// stream breaks, and starts again from the server's INIT snapshot, so fn
// always sees a complete set. It returns when ctx is done (ctx's error) or
// the server refuses the watch. fn runs on the calling goroutine.
func (c *Client) WatchServers(ctx context.Context, kind string, fn func([]*authv1.Server)) error {
	backoff := c.cfg.RetryBackoff
	for {
		synced, err := c.watchServersOnce(ctx, kind, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrInvalidArgument) {
			return err
		}
		if synced {
			backoff = c.cfg.RetryBackoff
		}
		c.log.Debug("watch broken; reconnecting", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (c *Client) watchServersOnce(ctx context.Context, kind string, fn func([]*authv1.Server)) (synced bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.WatchServers(ctx, &authv1.WatchServersRequest{Kind: kind})
	if err != nil {
		return false, err
	}
	set := map[string]*authv1.Server{}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return synced, err
		}
		switch ev.Type {
		case authv1.ServerEvent_TYPE_INIT:
			synced = true
			clear(set)
			for _, s := range ev.Servers {
				set[s.Kind+"/"+s.Name] = s
			}
		case authv1.ServerEvent_TYPE_PUT:
			if !synced || ev.Server == nil {
				continue
			}
			set[ev.Server.Kind+"/"+ev.Server.Name] = ev.Server
		case authv1.ServerEvent_TYPE_DELETE:
			if !synced || ev.Server == nil {
				continue
			}
			delete(set, ev.Server.Kind+"/"+ev.Server.Name)
		default:
			continue
		}
		out := make([]*authv1.Server, 0, len(set))
		for _, s := range set {
			out = append(out, s)
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Kind != out[j].Kind {
				return out[i].Kind < out[j].Kind
			}
			return out[i].Name < out[j].Name
		})
		fn(out)
	}
}
