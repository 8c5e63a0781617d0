// Renders the server's own openapi.yaml. Everything comes from this server: no CDN, and no
// call to Swagger's online validator (validatorUrl: null).
window.addEventListener('load', () => {
  window.ui = SwaggerUIBundle({
    url: 'openapi.yaml',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    validatorUrl: null,
  });
});
