-- +goose Up
-- modify "upstreams" table
ALTER TABLE "upstreams" ADD COLUMN "package_ecosystem" character varying NOT NULL DEFAULT '', ADD COLUMN "package_name" character varying NOT NULL DEFAULT '', ADD COLUMN "package_version" character varying NOT NULL DEFAULT '', ADD COLUMN "package_integrity" character varying NOT NULL DEFAULT '', ADD COLUMN "package_bin" character varying NOT NULL DEFAULT '';

-- +goose Down
-- reverse: modify "upstreams" table
ALTER TABLE "upstreams" DROP COLUMN "package_bin", DROP COLUMN "package_integrity", DROP COLUMN "package_version", DROP COLUMN "package_name", DROP COLUMN "package_ecosystem";
