// Starts Swagger UI on /openapi.json. An external script, so the page's CSP needs no
// 'unsafe-inline'. The password flow signs in through the first-party public client
// `tenantgate` (Swagger UI sends it as HTTP Basic with an empty secret).
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The validator badge would send the document to an outside service: off.
  validatorUrl: null,
  // Tokens stay in the page's memory; a reload signs out.
  persistAuthorization: false,
});
window.ui.initOAuth({ clientId: "tenantgate", scopeSeparator: " " });
