//! HTTP front of SCEP (RFC 8894 §4): `GET|POST /scep?operation=…` on the
//! HTTPS listener, and on the plain one with `scep.listen_plain`:
//! `GetCACaps`, `GetCACert` (the RA certificate and the issuing chain, as a
//! certificates-only PKCS#7) and `PKIOperation` (POST body, or GET
//! `message=<base64>`), handed to [`crate::scep::operation`].

use crate::app::App;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use std::collections::HashMap;
use std::sync::Arc;

/// Routes for the HTTPS router.
pub fn routes() -> Router<Arc<App>> {
    // `/certsrv/mscep/mscep.dll` is where NDES answers, and where MDM
    // profiles written for NDES point.
    Router::new()
        .route("/scep", get(operation).post(operation))
        .route("/certsrv/mscep/mscep.dll", get(operation).post(operation))
}

/// Largest `PKIOperation` message accepted (a CSR, a signer certificate
/// and their envelopes fit in a few kilobytes).
const MAX_MESSAGE: usize = 64 * 1024;

async fn operation(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let bad = |why: String| (StatusCode::BAD_REQUEST, why).into_response();
    if !app.config.scep.enabled {
        return (
            StatusCode::NOT_FOUND,
            "SCEP is switched off on this server (scep.enabled = false); enrol with ACME\n",
        )
            .into_response();
    }
    match query.get("operation").map(String::as_str) {
        Some("GetCACaps") => (
            [(header::CONTENT_TYPE, "text/plain")],
            custos_scep::ca_caps(true),
        )
            .into_response(),
        Some("GetCACert") => get_ca_cert(app).await,
        Some("PKIOperation") => {
            let message = if body.is_empty() {
                match query.get("message") {
                    Some(m) => {
                        let text: String = m.chars().filter(|c| !c.is_whitespace()).collect();
                        if text.len() > MAX_MESSAGE * 4 / 3 + 4 {
                            return too_large();
                        }
                        match base64::engine::general_purpose::STANDARD.decode(text) {
                            Ok(m) => m,
                            Err(e) => {
                                return bad(format!("PKIOperation message is not base64: {e}\n"))
                            }
                        }
                    }
                    None => return bad(
                        "PKIOperation needs the message: POST it, or GET with message=<base64>\n"
                            .into(),
                    ),
                }
            } else {
                body.to_vec()
            };
            if message.len() > MAX_MESSAGE {
                return too_large();
            }
            pki_operation(app, message).await
        }
        Some(other) if other.len() <= 64 => bad(format!(
            "unknown SCEP operation {other:?} (GetCACaps, GetCACert, PKIOperation)\n"
        )),
        Some(_) => bad("unknown SCEP operation\n".into()),
        None => bad("SCEP requests name an operation: /scep?operation=GetCACaps\n".into()),
    }
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a SCEP message is at most {MAX_MESSAGE} bytes\n"),
    )
        .into_response()
}

/// Runs a `PKIOperation` off the async workers (RSA, the ledger's synced
/// writes).
async fn pki_operation(app: Arc<App>, message: Vec<u8>) -> Response {
    use crate::scep::operation::{pki_operation, Answer, ScepContext};
    let done = tokio::task::spawn_blocking(move || {
        ensure_ra_recorded(&app)?;
        let cx = ScepContext {
            ledger: &app.ledger,
            ca: &app.ca,
            authority: &app.authority,
            crl: &app.crl,
            config: &app.config.scep,
        };
        Ok::<_, anyhow::Error>(pki_operation(&cx, &message, crate::model::time::unix_now()))
    })
    .await;
    match done {
        Ok(Ok(Answer::Reply(der))) => (
            [(header::CONTENT_TYPE, custos_scep::PKI_MESSAGE_MEDIA_TYPE)],
            der,
        )
            .into_response(),
        Ok(Ok(Answer::Malformed(why))) => (
            StatusCode::BAD_REQUEST,
            format!("not a SCEP PKIOperation message: {why}\n"),
        )
            .into_response(),
        Ok(Ok(Answer::Internal)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the SCEP request could not be processed; see the server log\n",
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "SCEP: cannot make or read the RA");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the SCEP RA certificate is not available; see the server log\n",
            )
                .into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "SCEP task failed\n").into_response(),
    }
}

/// Makes the RA if needed and records its certificate in the ledger (so it
/// has OCSP answers and can be revoked) and the audit log, once: checked
/// by serial, so a failure here is made good on the next request.
fn ensure_ra_recorded(app: &App) -> anyhow::Result<Arc<crate::ca::ScepRa>> {
    let ra = app.ca.scep_ra(app.config.scep.ra_key_bits)?;
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&ra.cert_der)?;
    let serial = crate::serial::Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes())
        .map_err(|e| anyhow::anyhow!("SCEP RA serial: {e}"))?;
    if app.ledger.get(&serial)?.is_none() {
        let now = crate::model::time::unix_now();
        app.authority
            .record_signed(&ra.cert_der, "scep-ra", "serve", now)
            .map_err(|e| anyhow::anyhow!("recording the SCEP RA certificate: {e}"))?;
    }
    Ok(ra)
}

/// The RA certificate, the issuing CA and the root, as a certificates-only
/// PKCS#7 (`application/x-x509-ca-ra-cert`). The RA is made at the first
/// request (an RSA key takes a moment), off the async workers.
async fn get_ca_cert(app: Arc<App>) -> Response {
    let made = tokio::task::spawn_blocking(move || {
        let ra = ensure_ra_recorded(&app)?;
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
