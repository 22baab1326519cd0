//! HTTP front of SCEP (RFC 8894 §4): `GET|POST /scep?operation=…` on the
//! HTTPS listener. So far `GetCACaps` and `GetCACert` (the RA certificate
//! and the issuing chain, as a certificates-only PKCS#7);
//! `PKIOperation` answers 501 until enrolment lands.

use crate::app::App;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

/// Routes for the HTTPS router.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/scep", get(operation).post(operation))
}

async fn operation(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let bad = |why: String| (StatusCode::BAD_REQUEST, why).into_response();
    match query.get("operation").map(String::as_str) {
        Some("GetCACaps") => (
            [(header::CONTENT_TYPE, "text/plain")],
            custos_scep::ca_caps(false),
        )
            .into_response(),
        Some("GetCACert") => get_ca_cert(app).await,
        Some("PKIOperation") => (
            StatusCode::NOT_IMPLEMENTED,
            "PKIOperation (SCEP enrolment) is not available yet\n",
        )
            .into_response(),
        Some(other) if other.len() <= 64 => bad(format!(
            "unknown SCEP operation {other:?} (GetCACaps, GetCACert, PKIOperation)\n"
        )),
        Some(_) => bad("unknown SCEP operation\n".into()),
        None => bad("SCEP requests name an operation: /scep?operation=GetCACaps\n".into()),
    }
}

/// The RA certificate, the issuing CA and the root, as a certificates-only
/// PKCS#7 (`application/x-x509-ca-ra-cert`). The RA is made at the first
/// request (an RSA key takes a moment), off the async workers.
async fn get_ca_cert(app: Arc<App>) -> Response {
    let made = tokio::task::spawn_blocking(move || {
        let ra = app.ca.scep_ra()?;
        // Like every certificate the CA signs: in the ledger (so it has
        // OCSP answers and can be revoked) and in the audit log. Checked
        // by serial, so a failure here is made good on the next request.
        let cert = <x509_cert::Certificate as der::Decode>::from_der(&ra.cert_der)?;
        let serial =
            crate::serial::Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes())
                .map_err(|e| anyhow::anyhow!("SCEP RA serial: {e}"))?;
        if app.ledger.get(&serial)?.is_none() {
            let now = crate::model::time::unix_now();
            app.authority
                .record_signed(&ra.cert_der, "scep-ra", "serve", now)
                .map_err(|e| anyhow::anyhow!("recording the SCEP RA certificate: {e}"))?;
        }
        Ok::<_, anyhow::Error>(custos_scep::certs_only(&[
            &ra.cert_der,
            app.ca.issuer_der(),
            app.ca.root_der(),
        ])?)
    })
    .await;
    match made {
        Ok(Ok(p7)) => (
            [(header::CONTENT_TYPE, custos_scep::CA_RA_CERT_MEDIA_TYPE)],
            p7,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "SCEP GetCACert: cannot make or read the RA");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the SCEP RA certificate is not available; see the server log\n",
            )
                .into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "SCEP task failed\n").into_response(),
    }
}
