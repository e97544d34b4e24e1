//! Reading the SDK's errors: status, code, a 404, one line for a log.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The HTTP status of an SDK error's answer, when there was one.
pub fn http_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// The error code S3 answered with, when it sent one.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// Whether the answer was a 404: no such key, version, upload or bucket.
pub fn is_not_found<E>(err: &SdkError<E, HttpResponse>) -> bool {
    http_status(err) == Some(404)
}

/// One line for an SDK error: its code and message when the service sent them, else the
/// whole chain of sources (the SDK's Display alone says only "service error").
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(service) = err {
        let e = service.err();
        // An answer the SDK could not read an error code from still has a status.
        let status = service.raw().status().as_u16();
        return match e.code() {
            Some(code) => format!("{code} ({})", e.message().unwrap_or("no message")),
            None => format!(
                "HTTP {status} without an error code ({})",
                e.message().unwrap_or("no message")
            ),
        };
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
