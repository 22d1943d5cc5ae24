package coi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/coibox/coibox/coi/coiext"
	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/coi/webpush"
	"github.com/coibox/coibox/store"
)

// Options configure Chat. Zero values take the defaults noted.
type Options struct {
	Store *store.Store
	// DataDir is where the resource guard measures free disk.
	DataDir string
	// HideXChatmail and HideXDeltaPush stop advertising those capabilities even where
	// a domain's profile has them (newer cores read METADATA instead; chatmail §2.1).
	HideXChatmail  bool
	HideXDeltaPush bool
	// CreationsPerNetwork bounds accounts made on first login per client /24 (IPv4)
	// or /64 (IPv6) per hour (default 20; chatmail §3).
	CreationsPerNetwork int
	// MaxSMTPRecipients is served as /shared/vendor/deltachat/maxsmtprecipients.
	MaxSMTPRecipients int
	// AppVersions, one line of JSON, is served as /shared/vendor/deltachat/appversions.
	AppVersions string
	// TURN, when set, gives the value of /shared/vendor/deltachat/turn for a domain's
	// profile ("" for none): package turn's credentials, wired by cmd.
	TURN func(p profile.Profile, now time.Time) string
	// Push stores device tokens; nil leaves /private/devicetoken to the store.
	Push PushTokens
	// WebPush, when set (with COI), is the IMAP WebPush extension: WEBPUSH after
	// login, its METADATA entries, notifications after delivery.
	WebPush *webpush.Service
	// COI, when set, is the Chat-Over-IMAP extension: COI after login, its METADATA
	// entries and folder rules (package coiext).
	COI *coiext.Ext
	// Now is the clock; tests replace it.
	Now    func() time.Time
	Logger *slog.Logger
}

// PushTokens is the device-token store of chatmail §9 (package push).
type PushTokens interface {
	Set(ctx context.Context, accountID int64, value []byte, now time.Time) error
	Get(ctx context.Context, accountID int64, now time.Time) (string, error)
	Trigger(ctx context.Context, accountID int64, accountAddress, fromAddress string) error
}

// Chat applies the chat rules.
type Chat struct {
	st       *store.Store
	opts     Options
	log      *slog.Logger
	creation *netLimiter
	sends    *gcra
	firsts   singleflight.Group // first logins in progress, by address
}

// New returns the rules over opts.Store.
func New(opts Options) *Chat {
	if opts.CreationsPerNetwork <= 0 {
		opts.CreationsPerNetwork = 20
	}
	if opts.MaxSMTPRecipients <= 0 {
		opts.MaxSMTPRecipients = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Chat{
		st:       opts.Store,
		opts:     opts,
		log:      opts.Logger,
		creation: newNetLimiter(opts.CreationsPerNetwork, time.Hour),
		sends:    newGCRA(),
	}
}

// Profile returns the settings of the domain with id, decoded from the store.
func (c *Chat) Profile(ctx context.Context, domainID int64) (profile.Profile, error) {
	d, err := c.st.DomainByID(ctx, domainID)
	if err != nil {
		return profile.Profile{}, fmt.Errorf("read domain profile: %w", err)
	}
	return StoredProfile(d)
}

// DomainProfile returns the settings of the domain named name; ok is false when the
// domain is not served here.
func (c *Chat) DomainProfile(ctx context.Context, name string) (p profile.Profile, ok bool, err error) {
	d, err := c.st.Domain(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return profile.Profile{}, false, nil
	}
	if err != nil {
		return profile.Profile{}, false, fmt.Errorf("read domain profile: %w", err)
	}
	p, err = StoredProfile(d)
	return p, err == nil, err
}

// StoredProfile decodes a domain's stored profile; "" is the defaults of its kind.
func StoredProfile(d *store.Domain) (profile.Profile, error) {
	if d.Profile == "" {
		return profile.Default(d.Chatmail), nil
	}
	p, err := profile.Decode(d.Profile)
	if err != nil {
		return profile.Profile{}, fmt.Errorf("decode profile of %s: %w", d.Name, err)
	}
	return p, nil
}

// addressProfile is the profile of an address's domain; ok is false for a domain
// not served here.
func (c *Chat) addressProfile(ctx context.Context, address string) (profile.Profile, bool, error) {
	_, domain, err := store.SplitAddress(store.Normalize(address))
	if err != nil {
		return profile.Profile{}, false, nil
	}
	return c.DomainProfile(ctx, domain)
}
