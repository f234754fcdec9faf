-- +goose Up
-- drop index "tool_upstream_id_name" from table: "tools"
DROP INDEX "tool_upstream_id_name";
-- modify "tools" table
ALTER TABLE "tools" ADD COLUMN "kind" character varying NOT NULL DEFAULT 'tool';
-- create index "tool_upstream_id_kind_name" to table: "tools"
CREATE UNIQUE INDEX "tool_upstream_id_kind_name" ON "tools" ("upstream_id", "kind", "name");

-- +goose Down
-- reverse: create index "tool_upstream_id_kind_name" to table: "tools"
DROP INDEX "tool_upstream_id_kind_name";
-- reverse: modify "tools" table
ALTER TABLE "tools" DROP COLUMN "kind";
-- reverse: drop index "tool_upstream_id_name" from table: "tools"
CREATE UNIQUE INDEX "tool_upstream_id_name" ON "tools" ("upstream_id", "name");
