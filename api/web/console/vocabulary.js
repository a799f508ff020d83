// The audit vocabulary of storage/audit.py; tests/test_web_pages.py keeps the two in step.
export const ACTIONS = [
  "token.issued",
  "token.refused",
  "token.refreshed",
  "token.revoked",
  "token.reuse_detected",
  "client.created",
  "client.revoked",
  "client.secret_rotated",
  "member.added",
  "member.role_changed",
  "member.removed",
  "tenant.created",
  "tenant.changed",
  "tenant.suspended",
  "access.denied",
  "rate_limit.exceeded",
];
export const OUTCOMES = ["success", "failure", "denied"];
