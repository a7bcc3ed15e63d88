//! Builds the application from settings: adapters, authenticator, routes, Swagger UI. Binds the
//! listener first so that tests can ask for port 0 and read the port back.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::openapi::ApiDoc;
use crate::providers::Registry;
use crate::request_id;
use crate::routes::{self, clients::ClientsState};

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

pub struct Application {
    server: Server,
    port: u16,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartError> {
        let registry = Registry::from_settings(settings)?;
        let authenticator = Authenticator::from_settings(&settings.auth)?;
        if matches!(authenticator, Authenticator::Disabled) {
            tracing::warn!("CALLER AUTHENTICATION IS DISABLED (auth.disabled = true): anyone who reaches this gateway can create clients");
        }
        let available: Vec<&str> = registry.available().map(|p| p.as_str()).collect();
        tracing::info!(providers = ?available, "adapters ready");

        let listener = TcpListener::bind(&settings.server.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(ClientsState {
            registry,
            body_limit: settings.server.body_limit_bytes,
            deadline: Duration::from_millis(settings.server.deadline_ms),
        });
        let authenticator = web::Data::new(authenticator);
        let metrics = web::Data::new(crate::metrics::handle());
        let openapi = ApiDoc::openapi();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(request_id::middleware))
                .app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(metrics.clone())
                .configure(routes::configure)
                .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/openapi.json", openapi.clone()))
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(30);
        if let Some(workers) = settings.server.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            server: server.run(),
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
