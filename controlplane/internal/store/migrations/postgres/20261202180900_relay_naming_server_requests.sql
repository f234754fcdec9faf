-- +goose Up
-- modify "upstreams" table
ALTER TABLE "upstreams" ADD COLUMN "deny_sampling" boolean NOT NULL DEFAULT false, ADD COLUMN "deny_elicitation" boolean NOT NULL DEFAULT false, ADD COLUMN "deny_roots" boolean NOT NULL DEFAULT false;
-- modify "virtual_servers" table
ALTER TABLE "virtual_servers" ADD COLUMN "unprefixed" boolean NOT NULL DEFAULT false, ADD COLUMN "renames" jsonb NULL;

-- +goose Down
-- reverse: modify "virtual_servers" table
ALTER TABLE "virtual_servers" DROP COLUMN "renames", DROP COLUMN "unprefixed";
-- reverse: modify "upstreams" table
ALTER TABLE "upstreams" DROP COLUMN "deny_roots", DROP COLUMN "deny_elicitation", DROP COLUMN "deny_sampling";
