// Package identity manages people and credentials: users provisioned from
// OIDC logins, memberships and invitations, console sessions and API keys.
// It turns a session or an API key into the viewer.Viewer that every other
// service and the ent privacy rules check.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/apikey"
	"github.com/portcullis-mcp/portcullis/ent/invitation"
	"github.com/portcullis-mcp/portcullis/ent/membership"
	"github.com/portcullis-mcp/portcullis/ent/session"
	"github.com/portcullis-mcp/portcullis/ent/user"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// APIKeyPrefix starts every API key, so that secret scanners can find leaked ones.
const APIKeyPrefix = "pcak_"

// Service manages users, memberships, sessions and API keys.
type Service struct {
	db         *ent.Client
	log        *slog.Logger
	now        func() time.Time
	sessionTTL time.Duration
	rdb        redis.UniversalClient // console sessions live here when set
}

// KeepSessionsIn moves console sessions to Redis, so that every control-plane
// replica sees a login and a logout at once and the database is not written
// per session. Sessions already in the database are not carried over.
func (s *Service) KeepSessionsIn(rdb redis.UniversalClient) { s.rdb = rdb }

const redisSessionPrefix = "portcullis:console-session:"

// setTenantIfLive switches a session's tenant only while the session exists,
// so that a switch racing its expiry cannot leave a key without a TTL.
var setTenantIfLive = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
return redis.call("HSET", KEYS[1], "tenant", ARGV[1])`)

// New returns a Service.
func New(db *ent.Client, log *slog.Logger) (*Service, error) {
	if db == nil {
		return nil, errors.New("identity.New: db is required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, log: log.With("component", "identity"), now: time.Now, sessionTTL: 12 * time.Hour}, nil
}

// Claims is what a verified ID token says about a person.
type Claims struct {
	Issuer, Subject, Email, Name string
}

// Login provisions the user on first login (keyed by issuer and subject),
// refreshes their email and name, and turns pending invitations for their
// email into memberships. The email must have been verified by the issuer.
func (s *Service) Login(ctx context.Context, c Claims) (*ent.User, error) {
	if c.Issuer == "" || c.Subject == "" || len(c.Issuer) > 512 || len(c.Subject) > 255 {
		return nil, authz.Invalid("the identity provider returned no usable issuer and subject")
	}
	email := strings.ToLower(strings.TrimSpace(c.Email))
	if len(email) > 320 {
		email = ""
	}
	name := c.Name
	if len(name) > 200 {
		name = name[:200]
	}
	sys := viewer.System(ctx)
	now := s.now()
	var u *ent.User
	err := audit.WithTx(sys, s.db, func(tx *ent.Client) error {
		id, err := tx.User.Create().SetIssuer(c.Issuer).SetSubject(c.Subject).SetEmail(email).SetName(name).
			SetLastLoginAt(now).OnConflictColumns(user.FieldIssuer, user.FieldSubject).
			Update(func(up *ent.UserUpsert) { up.SetEmail(email).SetName(name).SetLastLoginAt(now).SetUpdatedAt(now) }).
			ID(sys)
		if err != nil {
			return fmt.Errorf("provisioning user: %w", err)
		}
		if u, err = tx.User.Get(sys, id); err != nil {
			return err
		}
		if email == "" {
			return nil
		}
		invs, err := tx.Invitation.Query().Where(invitation.Email(email), invitation.AcceptedAtIsNil(), invitation.ExpiresAtGT(now)).All(sys)
		if err != nil {
			return err
		}
		for _, inv := range invs {
			exists, err := tx.Membership.Query().Where(membership.TenantID(inv.TenantID), membership.UserID(u.ID)).Exist(sys)
			if err != nil {
				return err
			}
			if !exists {
				m, err := tx.Membership.Create().SetTenantID(inv.TenantID).SetUserID(u.ID).SetRole(membership.Role(inv.Role)).Save(sys)
				if err != nil {
					return err
				}
				actx := viewer.NewContext(sys, viewer.Viewer{Actor: "user:" + email})
				if err := audit.Record(actx, tx, audit.Event{TenantID: inv.TenantID, Action: "member.join", TargetType: "member",
					TargetID: m.ID.String(), TargetName: email, After: m}); err != nil {
					return err
				}
			}
			if err := tx.Invitation.UpdateOne(inv).SetAcceptedAt(now).Exec(sys); err != nil {
				return err
			}
		}
		return nil
	})
	return u, err
}

// TenantMembership is one tenant a user belongs to.
type TenantMembership struct {
	TenantID   uuid.UUID
	Slug, Name string
	Role       viewer.Role
}

// Memberships lists the tenants a user belongs to, by name.
func (s *Service) Memberships(ctx context.Context, userID uuid.UUID) ([]TenantMembership, error) {
	sys := viewer.System(ctx) // a user's own memberships, across tenants
	ms, err := s.db.Membership.Query().Where(membership.UserID(userID)).WithTenant().All(sys)
	if err != nil {
		return nil, err
	}
	out := make([]TenantMembership, 0, len(ms))
	for _, m := range ms {
		r, _ := viewer.ParseRole(m.Role.String())
		out = append(out, TenantMembership{TenantID: m.TenantID, Slug: m.Edges.Tenant.Slug, Name: m.Edges.Tenant.Name, Role: r})
	}
	return out, nil
}

// UserViewer is the viewer for a user acting in a tenant. A user who is not a
// member gets ErrNotFound, so tenants' existence is not disclosed.
func (s *Service) UserViewer(ctx context.Context, userID, tenantID uuid.UUID) (viewer.Viewer, error) {
	sys := viewer.System(ctx)
	m, err := s.db.Membership.Query().Where(membership.UserID(userID), membership.TenantID(tenantID)).WithUser().Only(sys)
	if ent.IsNotFound(err) {
		return viewer.Viewer{}, fmt.Errorf("tenant %s: %w", tenantID, authz.ErrNotFound)
	} else if err != nil {
		return viewer.Viewer{}, err
	}
	r, err := viewer.ParseRole(m.Role.String())
	if err != nil {
		return viewer.Viewer{}, err
	}
	return viewer.Viewer{TenantID: tenantID, Role: r, UserID: userID, Actor: "user:" + m.Edges.User.Email}, nil
}

// User returns a user by id.
func (s *Service) User(ctx context.Context, id uuid.UUID) (*ent.User, error) {
	u, err := s.db.User.Get(viewer.System(ctx), id)
	return u, authz.DBError("user", err)
}

// Member is a person in a tenant, or an invitation not yet accepted.
type Member struct {
	ID      uuid.UUID // membership or invitation id
	Email   string
	Name    string
	Role    string
	Pending bool // an invitation
	Since   time.Time
}

// Members lists the tenant's members and pending invitations.
func (s *Service) Members(ctx context.Context, tenantID uuid.UUID) ([]Member, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	ms, err := s.db.Membership.Query().Where(membership.TenantID(tenantID)).Order(ent.Asc(membership.FieldCreatedAt)).All(ctx)
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, m := range ms {
		u, err := s.db.User.Get(viewer.System(ctx), m.UserID) // users are global; this member's user only
		if err != nil {
			return nil, err
		}
		out = append(out, Member{ID: m.ID, Email: u.Email, Name: u.Name, Role: m.Role.String(), Since: m.CreatedAt})
	}
	invs, err := s.db.Invitation.Query().Where(invitation.TenantID(tenantID), invitation.AcceptedAtIsNil(), invitation.ExpiresAtGT(s.now())).All(ctx)
	if err != nil {
		return nil, err
	}
	for _, i := range invs {
		out = append(out, Member{ID: i.ID, Email: i.Email, Role: i.Role.String(), Pending: true, Since: i.CreatedAt})
	}
	return out, nil
}

// Invite lets the person with email join the tenant with role when they
// next log in. Admins invite; only owners may invite owners.
func (s *Service) Invite(ctx context.Context, tenantID uuid.UUID, email string, role viewer.Role) (*ent.Invitation, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	addr, err := mail.ParseAddress(strings.TrimSpace(email))
	if err != nil || addr.Address != strings.TrimSpace(email) || len(email) > 320 {
		return nil, authz.Invalid("%q is not an email address", email)
	}
	if err := canGrant(ctx, role); err != nil {
		return nil, err
	}
	var inv *ent.Invitation
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		inv, err = tx.Invitation.Create().SetTenantID(tenantID).SetEmail(strings.ToLower(addr.Address)).
			SetRole(invitation.Role(role.String())).SetInvitedBy(authz.Actor(ctx)).
			SetExpiresAt(s.now().Add(14 * 24 * time.Hour)).Save(ctx)
		if err != nil {
			return authz.DBError("inviting", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "member.invite", TargetType: "invitation",
			TargetID: inv.ID.String(), TargetName: inv.Email, After: inv})
	})
	return inv, err
}

func canGrant(ctx context.Context, role viewer.Role) error {
	if role == viewer.RoleNone {
		return authz.Invalid("choose a role: owner, admin, approver or viewer")
	}
	v, ok := viewer.FromContext(ctx)
	if !ok {
		return nil // a system job; authz.Require already refused anyone else
	}
	if role > v.Role {
		return fmt.Errorf("%w: you cannot grant %s, which is above your own role (%s)", authz.ErrPermissionDenied, role, v.Role)
	}
	return nil
}

// SetRole changes a member's role. Only owners change owners, and the last
// owner cannot be demoted.
func (s *Service) SetRole(ctx context.Context, tenantID, membershipID uuid.UUID, role viewer.Role) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	if err := canGrant(ctx, role); err != nil {
		return err
	}
	return audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		m, err := tx.Membership.Query().Where(membership.TenantID(tenantID), membership.ID(membershipID)).Only(ctx)
		if ent.IsNotFound(err) {
			// A pending invitation (members are listed with them) is cancelled.
			inv, ierr := tx.Invitation.Query().Where(invitation.TenantID(tenantID), invitation.ID(membershipID), invitation.AcceptedAtIsNil()).Only(ctx)
			if ierr != nil {
				return authz.DBError("member", err)
			}
			if inv.Role == invitation.RoleOwner {
				if v, _ := viewer.FromContext(ctx); v.Role < viewer.RoleOwner {
					return fmt.Errorf("%w: only an owner can cancel an owner's invitation", authz.ErrPermissionDenied)
				}
			}
			if err := tx.Invitation.DeleteOne(inv).Exec(ctx); err != nil {
				return authz.DBError("cancelling invitation", err)
			}
			return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "member.invite_cancel", TargetType: "invitation",
				TargetID: inv.ID.String(), TargetName: inv.Email, Before: inv})
		}
		if err != nil {
			return authz.DBError("member", err)
		}
		if err := s.guardOwner(ctx, tx, tenantID, m); err != nil {
			return err
		}
		after, err := tx.Membership.UpdateOne(m).SetRole(membership.Role(role.String())).Save(ctx)
		if err != nil {
			return authz.DBError("changing role", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "member.set_role", TargetType: "member",
			TargetID: m.ID.String(), Before: m, After: after})
	})
}

// RemoveMember takes a member out of the tenant.
func (s *Service) RemoveMember(ctx context.Context, tenantID, membershipID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	return audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		m, err := tx.Membership.Query().Where(membership.TenantID(tenantID), membership.ID(membershipID)).Only(ctx)
		if ent.IsNotFound(err) {
			// A pending invitation (members are listed with them) is cancelled.
			inv, ierr := tx.Invitation.Query().Where(invitation.TenantID(tenantID), invitation.ID(membershipID), invitation.AcceptedAtIsNil()).Only(ctx)
			if ierr != nil {
				return authz.DBError("member", err)
			}
			if inv.Role == invitation.RoleOwner {
				if v, _ := viewer.FromContext(ctx); v.Role < viewer.RoleOwner {
					return fmt.Errorf("%w: only an owner can cancel an owner's invitation", authz.ErrPermissionDenied)
				}
			}
			if err := tx.Invitation.DeleteOne(inv).Exec(ctx); err != nil {
				return authz.DBError("cancelling invitation", err)
			}
			return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "member.invite_cancel", TargetType: "invitation",
				TargetID: inv.ID.String(), TargetName: inv.Email, Before: inv})
		}
		if err != nil {
			return authz.DBError("member", err)
		}
		if err := s.guardOwner(ctx, tx, tenantID, m); err != nil {
			return err
		}
		if err := tx.Membership.DeleteOne(m).Exec(ctx); err != nil {
			return authz.DBError("removing member", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "member.remove", TargetType: "member",
			TargetID: m.ID.String(), Before: m})
	})
}

func (s *Service) guardOwner(ctx context.Context, tx *ent.Client, tenantID uuid.UUID, m *ent.Membership) error {
	if m.Role != membership.RoleOwner {
		return nil
	}
	if v, _ := viewer.FromContext(ctx); v.Role < viewer.RoleOwner {
		return fmt.Errorf("%w: only an owner can change or remove an owner", authz.ErrPermissionDenied)
	}
	n, err := tx.Membership.Query().Where(membership.TenantID(tenantID), membership.RoleEQ(membership.RoleOwner)).Count(ctx)
	if err != nil {
		return err
	}
	if n <= 1 {
		return authz.Invalid("a tenant keeps at least one owner; make someone else owner first")
	}
	return nil
}

// Session is a logged-in console user.
type Session struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	TenantID  uuid.UUID // uuid.Nil until one is chosen
	CSRFToken string

	key string // Redis key, for sessions kept there
}

func hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CreateSession starts a console session for the user and returns the
// cookie value.
func (s *Service) CreateSession(ctx context.Context, userID, tenantID uuid.UUID) (string, error) {
	token := randomToken()
	if s.rdb != nil {
		tenant := ""
		if tenantID != uuid.Nil {
			tenant = tenantID.String()
		}
		key := redisSessionPrefix + hex.EncodeToString(hash(token))
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, "id", uuid.NewString(), "user", userID.String(), "tenant", tenant, "csrf", randomToken())
			p.Expire(ctx, key, s.sessionTTL)
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("creating session in Redis: %w", err)
		}
		return token, nil
	}
	c := s.db.Session.Create().SetTokenHash(hash(token)).SetUserID(userID).
		SetCsrfToken(randomToken()).SetExpiresAt(s.now().Add(s.sessionTTL))
	if tenantID != uuid.Nil {
		c.SetTenantID(tenantID)
	}
	sys := viewer.System(ctx)
	if err := c.Exec(sys); err != nil {
		return "", fmt.Errorf("creating session: %w", err)
	}
	// Expired sessions are useless; drop them as new ones start.
	if _, err := s.db.Session.Delete().Where(session.ExpiresAtLT(s.now())).Exec(sys); err != nil {
		s.log.Warn("deleting expired sessions", "err", err)
	}
	return token, nil
}

// Session looks up a live session by its cookie value.
func (s *Service) Session(ctx context.Context, token string) (*Session, error) {
	if token == "" || len(token) > 100 {
		return nil, authz.ErrUnauthenticated
	}
	if s.rdb != nil {
		key := redisSessionPrefix + hex.EncodeToString(hash(token))
		h, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, fmt.Errorf("reading session from Redis: %w", err)
		}
		id, idErr := uuid.Parse(h["id"])
		user, userErr := uuid.Parse(h["user"])
		if idErr != nil || userErr != nil {
			return nil, authz.ErrUnauthenticated
		}
		out := &Session{ID: id, UserID: user, CSRFToken: h["csrf"], key: key}
		out.TenantID, _ = uuid.Parse(h["tenant"]) // "" → uuid.Nil: none chosen yet
		return out, nil
	}
	se, err := s.db.Session.Query().Where(session.TokenHash(hash(token)), session.ExpiresAtGT(s.now())).Only(viewer.System(ctx))
	if ent.IsNotFound(err) {
		return nil, authz.ErrUnauthenticated
	} else if err != nil {
		return nil, err
	}
	out := &Session{ID: se.ID, UserID: se.UserID, CSRFToken: se.CsrfToken}
	if se.TenantID != nil {
		out.TenantID = *se.TenantID
	}
	return out, nil
}

// SetSessionTenant switches the tenant a session shows, after checking the
// user is a member.
func (s *Service) SetSessionTenant(ctx context.Context, se *Session, tenantID uuid.UUID) error {
	if _, err := s.UserViewer(ctx, se.UserID, tenantID); err != nil {
		return err
	}
	if s.rdb != nil {
		n, err := setTenantIfLive.Run(ctx, s.rdb, []string{se.key}, tenantID.String()).Int()
		if err != nil {
			return err
		}
		if n < 0 {
			return authz.ErrUnauthenticated // expired meanwhile: not brought back
		}
		return nil
	}
	return s.db.Session.UpdateOneID(se.ID).SetTenantID(tenantID).Exec(viewer.System(ctx))
}

// EndSession logs out.
func (s *Service) EndSession(ctx context.Context, token string) error {
	if s.rdb != nil {
		return s.rdb.Del(ctx, redisSessionPrefix+hex.EncodeToString(hash(token))).Err()
	}
	_, err := s.db.Session.Delete().Where(session.TokenHash(hash(token))).Exec(viewer.System(ctx))
	return err
}

// CreateAPIKey issues a key for the tenant; the secret is returned once and
// only its hash is kept. A key's role cannot exceed its creator's.
func (s *Service) CreateAPIKey(ctx context.Context, tenantID uuid.UUID, name string, role viewer.Role) (string, *ent.APIKey, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return "", nil, err
	}
	if err := canGrant(ctx, role); err != nil {
		return "", nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 63 {
		return "", nil, authz.Invalid("API key name must be 1 to 63 characters")
	}
	v, _ := viewer.FromContext(ctx)
	creator := v.UserID
	if creator == uuid.Nil && v.APIKeyID != uuid.Nil { // a key made with a key belongs to the same person
		parent, err := s.db.APIKey.Get(ctx, v.APIKeyID)
		if err != nil {
			return "", nil, err
		}
		creator = parent.CreatedBy
	}
	secret := APIKeyPrefix + randomToken()
	var k *ent.APIKey
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		k, err = tx.APIKey.Create().SetTenantID(tenantID).SetName(name).SetRole(apikey.Role(role.String())).
			SetSecretHash(hash(secret)).SetCreatedBy(creator).Save(ctx)
		if err != nil {
			return authz.DBError("creating API key", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "api_key.create", TargetType: "api_key",
			TargetID: k.ID.String(), TargetName: name, After: k})
	})
	if err != nil {
		return "", nil, err
	}
	return secret, k, nil
}

// APIKeys lists the tenant's keys (never their secrets).
func (s *Service) APIKeys(ctx context.Context, tenantID uuid.UUID) ([]*ent.APIKey, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	return s.db.APIKey.Query().Where(apikey.TenantID(tenantID)).Order(ent.Asc(apikey.FieldCreatedAt)).All(ctx)
}

// RevokeAPIKey makes a key unusable at once.
func (s *Service) RevokeAPIKey(ctx context.Context, tenantID, keyID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	return audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		k, err := tx.APIKey.Query().Where(apikey.TenantID(tenantID), apikey.ID(keyID)).Only(ctx)
		if err != nil {
			return authz.DBError("API key", err)
		}
		after, err := tx.APIKey.UpdateOne(k).SetRevokedAt(s.now()).Save(ctx)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "api_key.revoke", TargetType: "api_key",
			TargetID: k.ID.String(), TargetName: k.Name, Before: k, After: after})
	})
}

// APIKeyViewer authenticates an API key secret.
func (s *Service) APIKeyViewer(ctx context.Context, secret string) (viewer.Viewer, error) {
	if !strings.HasPrefix(secret, APIKeyPrefix) || len(secret) > 100 {
		return viewer.Viewer{}, authz.ErrUnauthenticated
	}
	sys := viewer.System(ctx) // looking up the key is how we learn the tenant
	k, err := s.db.APIKey.Query().Where(apikey.SecretHash(hash(secret)), apikey.RevokedAtIsNil()).Only(sys)
	if ent.IsNotFound(err) {
		return viewer.Viewer{}, authz.ErrUnauthenticated
	} else if err != nil {
		return viewer.Viewer{}, err
	}
	r, err := viewer.ParseRole(k.Role.String())
	if err != nil {
		return viewer.Viewer{}, err
	}
	if k.LastUsedAt == nil || s.now().Sub(*k.LastUsedAt) > time.Minute {
		_ = s.db.APIKey.UpdateOne(k).SetLastUsedAt(s.now()).Exec(sys)
	}
	return viewer.Viewer{TenantID: k.TenantID, Role: r, APIKeyID: k.ID, KeyOwner: k.CreatedBy, Actor: "api_key:" + k.Name}, nil
}
