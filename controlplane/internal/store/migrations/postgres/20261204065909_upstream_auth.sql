-- +goose Up
-- modify "call_events" table
ALTER TABLE "call_events" ADD COLUMN "upstream_identity" character varying NOT NULL DEFAULT '';
-- modify "upstreams" table
ALTER TABLE "upstreams" ADD COLUMN "auth_mode" character varying NOT NULL DEFAULT 'static', ADD COLUMN "oauth_client_id" character varying NOT NULL DEFAULT '', ADD COLUMN "oauth_client_secret_ref" character varying NOT NULL DEFAULT '', ADD COLUMN "oauth_scopes" jsonb NULL, ADD COLUMN "oauth_issuer" character varying NOT NULL DEFAULT '', ADD COLUMN "oauth_resource" character varying NOT NULL DEFAULT '';

-- +goose Down
-- reverse: modify "upstreams" table
ALTER TABLE "upstreams" DROP COLUMN "oauth_resource", DROP COLUMN "oauth_issuer", DROP COLUMN "oauth_scopes", DROP COLUMN "oauth_client_secret_ref", DROP COLUMN "oauth_client_id", DROP COLUMN "auth_mode";
-- reverse: modify "call_events" table
ALTER TABLE "call_events" DROP COLUMN "upstream_identity";
