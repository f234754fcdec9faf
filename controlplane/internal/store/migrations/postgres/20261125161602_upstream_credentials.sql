-- +goose Up
-- modify "upstreams" table
ALTER TABLE "upstreams" ADD COLUMN "credential_ref" character varying NOT NULL DEFAULT '', ADD COLUMN "credential_header" character varying NOT NULL DEFAULT '';

-- +goose Down
-- reverse: modify "upstreams" table
ALTER TABLE "upstreams" DROP COLUMN "credential_header", DROP COLUMN "credential_ref";
