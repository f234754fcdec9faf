-- +goose Up
-- create "call_rollups" table
CREATE TABLE "call_rollups" ("id" uuid NOT NULL, "gateway_id" uuid NOT NULL, "minute" timestamptz NOT NULL, "virtual_server" character varying NOT NULL DEFAULT '', "upstream" character varying NOT NULL DEFAULT '', "tool" character varying NOT NULL DEFAULT '', "calls" bigint NOT NULL DEFAULT 0, "denies" bigint NOT NULL DEFAULT 0, "errors" bigint NOT NULL DEFAULT 0, "latency_sum_micros" bigint NOT NULL DEFAULT 0, "latency_bucket_a" bigint NOT NULL DEFAULT 0, "latency_bucket_b" bigint NOT NULL DEFAULT 0, "latency_bucket_c" bigint NOT NULL DEFAULT 0, "latency_bucket_d" bigint NOT NULL DEFAULT 0, "latency_bucket_e" bigint NOT NULL DEFAULT 0, "latency_bucket_f" bigint NOT NULL DEFAULT 0, "latency_bucket_g" bigint NOT NULL DEFAULT 0, "latency_bucket_h" bigint NOT NULL DEFAULT 0, "latency_bucket_i" bigint NOT NULL DEFAULT 0, "latency_bucket_j" bigint NOT NULL DEFAULT 0, "latency_bucket_k" bigint NOT NULL DEFAULT 0, "latency_bucket_l" bigint NOT NULL DEFAULT 0, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "call_rollups_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "callrollup_gateway_id_minute_virtual_server_upstream_tool" to table: "call_rollups"
CREATE UNIQUE INDEX "callrollup_gateway_id_minute_virtual_server_upstream_tool" ON "call_rollups" ("gateway_id", "minute", "virtual_server", "upstream", "tool");
-- create index "callrollup_tenant_id" to table: "call_rollups"
CREATE INDEX "callrollup_tenant_id" ON "call_rollups" ("tenant_id");
-- create index "callrollup_tenant_id_minute" to table: "call_rollups"
CREATE INDEX "callrollup_tenant_id_minute" ON "call_rollups" ("tenant_id", "minute");

-- +goose Down
-- reverse: create index "callrollup_tenant_id_minute" to table: "call_rollups"
DROP INDEX "callrollup_tenant_id_minute";
-- reverse: create index "callrollup_tenant_id" to table: "call_rollups"
DROP INDEX "callrollup_tenant_id";
-- reverse: create index "callrollup_gateway_id_minute_virtual_server_upstream_tool" to table: "call_rollups"
DROP INDEX "callrollup_gateway_id_minute_virtual_server_upstream_tool";
-- reverse: create "call_rollups" table
DROP TABLE "call_rollups";
