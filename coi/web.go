package coi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coibox/coibox/coi/onboard"
	"github.com/coibox/coibox/coi/profile"
)

// OnboardHandler serves /new, its legacy path, and the onboarding page with its
// DCACCOUNT QR code for every chatmail domain (chatmail §4); other hosts get 404.
// selfSigned says the server's certificate is self-signed, so /new also hands out
// a dclogin URL.
func (c *Chat) OnboardHandler(selfSigned bool) (http.Handler, error) {
	h, err := onboard.NewHandler(onboard.Options{
		Domain: func(ctx context.Context, host string) (onboard.Info, bool) {
			p, ok, err := c.DomainProfile(ctx, host)
			if err != nil {
				c.log.Error("chat: onboarding: read domain", "host", host, "err", err)
				return onboard.Info{}, false
			}
			if !ok || !p.Chatmail {
				return onboard.Info{}, false
			}
			return onboard.Info{
				Name:             host,
				RegistrationOpen: p.Registration == profile.Open,
				PasswordMin:      p.PasswordMin,
				SelfSigned:       selfSigned,
			}, true
		},
		Exists: c.st.AddressTaken,
		Now:    c.opts.Now,
		Logger: c.log,
	})
	if err != nil {
		return nil, fmt.Errorf("make onboarding handler: %w", err)
	}
	return h, nil
}
