-- +goose Up
-- modify "tenants" table
ALTER TABLE "tenants" ADD COLUMN "client_oidc_issuer" character varying NOT NULL DEFAULT '', ADD COLUMN "client_group_claim" character varying NOT NULL DEFAULT 'groups';

-- +goose Down
-- reverse: modify "tenants" table
ALTER TABLE "tenants" DROP COLUMN "client_group_claim", DROP COLUMN "client_oidc_issuer";
