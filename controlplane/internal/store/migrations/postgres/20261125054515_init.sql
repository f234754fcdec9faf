-- +goose Up
-- create "sessions" table
CREATE TABLE "sessions" ("id" uuid NOT NULL, "token_hash" bytea NOT NULL, "user_id" uuid NOT NULL, "tenant_id" uuid NULL, "csrf_token" character varying NOT NULL, "created_at" timestamptz NOT NULL, "expires_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- create index "sessions_token_hash_key" to table: "sessions"
CREATE UNIQUE INDEX "sessions_token_hash_key" ON "sessions" ("token_hash");
-- create "tenants" table
CREATE TABLE "tenants" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "slug" character varying NOT NULL, "signing_private_key" bytea NOT NULL, "signing_public_key" bytea NOT NULL, PRIMARY KEY ("id"));
-- create index "tenants_slug_key" to table: "tenants"
CREATE UNIQUE INDEX "tenants_slug_key" ON "tenants" ("slug");
-- create "gateways" table
CREATE TABLE "gateways" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "gateways_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "gateway_tenant_id" to table: "gateways"
CREATE INDEX "gateway_tenant_id" ON "gateways" ("tenant_id");
-- create index "gateway_tenant_id_name" to table: "gateways"
CREATE UNIQUE INDEX "gateway_tenant_id_name" ON "gateways" ("tenant_id", "name");
-- create "agents" table
CREATE TABLE "agents" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "hostname" character varying NOT NULL DEFAULT '', "version" character varying NOT NULL DEFAULT '', "cert_fingerprint" character varying NOT NULL, "connected" boolean NOT NULL DEFAULT false, "last_seen" timestamptz NULL, "applied_version" bigint NOT NULL DEFAULT 0, "last_nack" character varying NOT NULL DEFAULT '', "revoked" boolean NOT NULL DEFAULT false, "tenant_id" uuid NOT NULL, "gateway_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "agents_gateways_agents" FOREIGN KEY ("gateway_id") REFERENCES "gateways" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "agents_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "agent_tenant_id" to table: "agents"
CREATE INDEX "agent_tenant_id" ON "agents" ("tenant_id");
-- create index "agents_cert_fingerprint_key" to table: "agents"
CREATE UNIQUE INDEX "agents_cert_fingerprint_key" ON "agents" ("cert_fingerprint");
-- create "api_keys" table
CREATE TABLE "api_keys" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "role" character varying NOT NULL, "secret_hash" bytea NOT NULL, "created_by" uuid NOT NULL, "last_used_at" timestamptz NULL, "revoked_at" timestamptz NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "api_keys_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "api_keys_secret_hash_key" to table: "api_keys"
CREATE UNIQUE INDEX "api_keys_secret_hash_key" ON "api_keys" ("secret_hash");
-- create index "apikey_tenant_id" to table: "api_keys"
CREATE INDEX "apikey_tenant_id" ON "api_keys" ("tenant_id");
-- create "audit_events" table
CREATE TABLE "audit_events" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "actor" character varying NOT NULL, "action" character varying NOT NULL, "target_type" character varying NOT NULL, "target_id" character varying NOT NULL, "target_name" character varying NOT NULL DEFAULT '', "before" jsonb NULL, "after" jsonb NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "audit_events_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "auditevent_tenant_id" to table: "audit_events"
CREATE INDEX "auditevent_tenant_id" ON "audit_events" ("tenant_id");
-- create index "auditevent_tenant_id_created_at" to table: "audit_events"
CREATE INDEX "auditevent_tenant_id_created_at" ON "audit_events" ("tenant_id", "created_at");
-- create "call_events" table
CREATE TABLE "call_events" ("id" character varying NOT NULL, "gateway_id" uuid NOT NULL, "agent_id" uuid NOT NULL, "time" timestamptz NOT NULL, "principal" character varying NOT NULL DEFAULT '', "virtual_server" character varying NOT NULL DEFAULT '', "upstream" character varying NOT NULL DEFAULT '', "method" character varying NOT NULL, "tool" character varying NOT NULL DEFAULT '', "decision" character varying NOT NULL, "reason" character varying NOT NULL DEFAULT '', "latency_micros" bigint NOT NULL, "request_bytes" bigint NOT NULL, "response_bytes" bigint NOT NULL, "error" character varying NOT NULL DEFAULT '', "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "call_events_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "callevent_gateway_id_time" to table: "call_events"
CREATE INDEX "callevent_gateway_id_time" ON "call_events" ("gateway_id", "time");
-- create index "callevent_tenant_id" to table: "call_events"
CREATE INDEX "callevent_tenant_id" ON "call_events" ("tenant_id");
-- create index "callevent_tenant_id_time" to table: "call_events"
CREATE INDEX "callevent_tenant_id_time" ON "call_events" ("tenant_id", "time");
-- create "enrollment_tokens" table
CREATE TABLE "enrollment_tokens" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "secret_hash" bytea NOT NULL, "expires_at" timestamptz NOT NULL, "used_at" timestamptz NULL, "tenant_id" uuid NOT NULL, "gateway_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "enrollment_tokens_gateways_enrollment_tokens" FOREIGN KEY ("gateway_id") REFERENCES "gateways" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "enrollment_tokens_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "enrollment_tokens_secret_hash_key" to table: "enrollment_tokens"
CREATE UNIQUE INDEX "enrollment_tokens_secret_hash_key" ON "enrollment_tokens" ("secret_hash");
-- create index "enrollmenttoken_tenant_id" to table: "enrollment_tokens"
CREATE INDEX "enrollmenttoken_tenant_id" ON "enrollment_tokens" ("tenant_id");
-- create "invitations" table
CREATE TABLE "invitations" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "email" character varying NOT NULL, "role" character varying NOT NULL, "invited_by" character varying NOT NULL, "expires_at" timestamptz NOT NULL, "accepted_at" timestamptz NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "invitations_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "invitation_email" to table: "invitations"
CREATE INDEX "invitation_email" ON "invitations" ("email");
-- create index "invitation_tenant_id" to table: "invitations"
CREATE INDEX "invitation_tenant_id" ON "invitations" ("tenant_id");
-- create "users" table
CREATE TABLE "users" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "issuer" character varying NOT NULL, "subject" character varying NOT NULL, "email" character varying NOT NULL DEFAULT '', "name" character varying NOT NULL DEFAULT '', "last_login_at" timestamptz NULL, PRIMARY KEY ("id"));
-- create index "user_email" to table: "users"
CREATE INDEX "user_email" ON "users" ("email");
-- create index "user_issuer_subject" to table: "users"
CREATE UNIQUE INDEX "user_issuer_subject" ON "users" ("issuer", "subject");
-- create "memberships" table
CREATE TABLE "memberships" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "role" character varying NOT NULL, "tenant_id" uuid NOT NULL, "user_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "memberships_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "memberships_users_memberships" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "membership_tenant_id" to table: "memberships"
CREATE INDEX "membership_tenant_id" ON "memberships" ("tenant_id");
-- create index "membership_tenant_id_user_id" to table: "memberships"
CREATE UNIQUE INDEX "membership_tenant_id_user_id" ON "memberships" ("tenant_id", "user_id");
-- create "policy_versions" table
CREATE TABLE "policy_versions" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "version" bigint NOT NULL, "content_sha256" character varying NOT NULL, "payload" bytea NOT NULL, "signature" bytea NOT NULL, "key_id" character varying NOT NULL, "gateway_id" uuid NOT NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "policy_versions_gateways_policy_versions" FOREIGN KEY ("gateway_id") REFERENCES "gateways" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "policy_versions_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "policyversion_gateway_id_version" to table: "policy_versions"
CREATE UNIQUE INDEX "policyversion_gateway_id_version" ON "policy_versions" ("gateway_id", "version");
-- create index "policyversion_tenant_id" to table: "policy_versions"
CREATE INDEX "policyversion_tenant_id" ON "policy_versions" ("tenant_id");
-- create "upstreams" table
CREATE TABLE "upstreams" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "transport" character varying NOT NULL, "url" character varying NOT NULL DEFAULT '', "command" character varying NOT NULL DEFAULT '', "args" jsonb NULL, "labels" jsonb NULL, "reachable" boolean NOT NULL DEFAULT false, "last_error" character varying NOT NULL DEFAULT '', "gateway_id" uuid NOT NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "upstreams_gateways_upstreams" FOREIGN KEY ("gateway_id") REFERENCES "gateways" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "upstreams_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "upstream_gateway_id_name" to table: "upstreams"
CREATE UNIQUE INDEX "upstream_gateway_id_name" ON "upstreams" ("gateway_id", "name");
-- create index "upstream_tenant_id" to table: "upstreams"
CREATE INDEX "upstream_tenant_id" ON "upstreams" ("tenant_id");
-- create "tools" table
CREATE TABLE "tools" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "live_sha256" character varying NOT NULL DEFAULT '', "pinned_sha256" character varying NOT NULL DEFAULT '', "first_seen" timestamptz NOT NULL, "last_seen" timestamptz NOT NULL, "tenant_id" uuid NOT NULL, "upstream_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "tools_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "tools_upstreams_tools" FOREIGN KEY ("upstream_id") REFERENCES "upstreams" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "tool_tenant_id" to table: "tools"
CREATE INDEX "tool_tenant_id" ON "tools" ("tenant_id");
-- create index "tool_upstream_id_name" to table: "tools"
CREATE UNIQUE INDEX "tool_upstream_id_name" ON "tools" ("upstream_id", "name");
-- create "tool_versions" table
CREATE TABLE "tool_versions" ("id" uuid NOT NULL, "sha256" character varying NOT NULL, "definition" bytea NOT NULL, "first_seen" timestamptz NOT NULL, "last_seen" timestamptz NOT NULL, "tool_id" uuid NOT NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "tool_versions_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "tool_versions_tools_versions" FOREIGN KEY ("tool_id") REFERENCES "tools" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "toolversion_tenant_id" to table: "tool_versions"
CREATE INDEX "toolversion_tenant_id" ON "tool_versions" ("tenant_id");
-- create index "toolversion_tool_id_sha256" to table: "tool_versions"
CREATE UNIQUE INDEX "toolversion_tool_id_sha256" ON "tool_versions" ("tool_id", "sha256");
-- create "virtual_servers" table
CREATE TABLE "virtual_servers" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "upstreams" jsonb NOT NULL, "gateway_id" uuid NOT NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "virtual_servers_gateways_virtual_servers" FOREIGN KEY ("gateway_id") REFERENCES "gateways" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "virtual_servers_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "virtualserver_gateway_id_name" to table: "virtual_servers"
CREATE UNIQUE INDEX "virtualserver_gateway_id_name" ON "virtual_servers" ("gateway_id", "name");
-- create index "virtualserver_tenant_id" to table: "virtual_servers"
CREATE INDEX "virtualserver_tenant_id" ON "virtual_servers" ("tenant_id");

-- +goose Down
-- reverse: create index "virtualserver_tenant_id" to table: "virtual_servers"
DROP INDEX "virtualserver_tenant_id";
-- reverse: create index "virtualserver_gateway_id_name" to table: "virtual_servers"
DROP INDEX "virtualserver_gateway_id_name";
-- reverse: create "virtual_servers" table
DROP TABLE "virtual_servers";
-- reverse: create index "toolversion_tool_id_sha256" to table: "tool_versions"
DROP INDEX "toolversion_tool_id_sha256";
-- reverse: create index "toolversion_tenant_id" to table: "tool_versions"
DROP INDEX "toolversion_tenant_id";
-- reverse: create "tool_versions" table
DROP TABLE "tool_versions";
-- reverse: create index "tool_upstream_id_name" to table: "tools"
DROP INDEX "tool_upstream_id_name";
-- reverse: create index "tool_tenant_id" to table: "tools"
DROP INDEX "tool_tenant_id";
-- reverse: create "tools" table
DROP TABLE "tools";
-- reverse: create index "upstream_tenant_id" to table: "upstreams"
DROP INDEX "upstream_tenant_id";
-- reverse: create index "upstream_gateway_id_name" to table: "upstreams"
DROP INDEX "upstream_gateway_id_name";
-- reverse: create "upstreams" table
DROP TABLE "upstreams";
-- reverse: create index "policyversion_tenant_id" to table: "policy_versions"
DROP INDEX "policyversion_tenant_id";
-- reverse: create index "policyversion_gateway_id_version" to table: "policy_versions"
DROP INDEX "policyversion_gateway_id_version";
-- reverse: create "policy_versions" table
DROP TABLE "policy_versions";
-- reverse: create index "membership_tenant_id_user_id" to table: "memberships"
DROP INDEX "membership_tenant_id_user_id";
-- reverse: create index "membership_tenant_id" to table: "memberships"
DROP INDEX "membership_tenant_id";
-- reverse: create "memberships" table
DROP TABLE "memberships";
-- reverse: create index "user_issuer_subject" to table: "users"
DROP INDEX "user_issuer_subject";
-- reverse: create index "user_email" to table: "users"
DROP INDEX "user_email";
-- reverse: create "users" table
DROP TABLE "users";
-- reverse: create index "invitation_tenant_id" to table: "invitations"
DROP INDEX "invitation_tenant_id";
-- reverse: create index "invitation_email" to table: "invitations"
DROP INDEX "invitation_email";
-- reverse: create "invitations" table
DROP TABLE "invitations";
-- reverse: create index "enrollmenttoken_tenant_id" to table: "enrollment_tokens"
DROP INDEX "enrollmenttoken_tenant_id";
-- reverse: create index "enrollment_tokens_secret_hash_key" to table: "enrollment_tokens"
DROP INDEX "enrollment_tokens_secret_hash_key";
-- reverse: create "enrollment_tokens" table
DROP TABLE "enrollment_tokens";
-- reverse: create index "callevent_tenant_id_time" to table: "call_events"
DROP INDEX "callevent_tenant_id_time";
-- reverse: create index "callevent_tenant_id" to table: "call_events"
DROP INDEX "callevent_tenant_id";
-- reverse: create index "callevent_gateway_id_time" to table: "call_events"
DROP INDEX "callevent_gateway_id_time";
-- reverse: create "call_events" table
DROP TABLE "call_events";
-- reverse: create index "auditevent_tenant_id_created_at" to table: "audit_events"
DROP INDEX "auditevent_tenant_id_created_at";
-- reverse: create index "auditevent_tenant_id" to table: "audit_events"
DROP INDEX "auditevent_tenant_id";
-- reverse: create "audit_events" table
DROP TABLE "audit_events";
-- reverse: create index "apikey_tenant_id" to table: "api_keys"
DROP INDEX "apikey_tenant_id";
-- reverse: create index "api_keys_secret_hash_key" to table: "api_keys"
DROP INDEX "api_keys_secret_hash_key";
-- reverse: create "api_keys" table
DROP TABLE "api_keys";
-- reverse: create index "agents_cert_fingerprint_key" to table: "agents"
DROP INDEX "agents_cert_fingerprint_key";
-- reverse: create index "agent_tenant_id" to table: "agents"
DROP INDEX "agent_tenant_id";
-- reverse: create "agents" table
DROP TABLE "agents";
-- reverse: create index "gateway_tenant_id_name" to table: "gateways"
DROP INDEX "gateway_tenant_id_name";
-- reverse: create index "gateway_tenant_id" to table: "gateways"
DROP INDEX "gateway_tenant_id";
-- reverse: create "gateways" table
DROP TABLE "gateways";
-- reverse: create index "tenants_slug_key" to table: "tenants"
DROP INDEX "tenants_slug_key";
-- reverse: create "tenants" table
DROP TABLE "tenants";
-- reverse: create index "sessions_token_hash_key" to table: "sessions"
DROP INDEX "sessions_token_hash_key";
-- reverse: create "sessions" table
DROP TABLE "sessions";
