//! Posting and deleting messages.

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use super::extract::{AuthContext, verify};
use super::render_with;
use super::{AuthUser, CsrfForm, HasCsrf};
use super::{ClientIp, IncomingFlash, redirect_with, secure};
use crate::auth as auth_mod;
use crate::data::{DataError, NewMessage};
use crate::domain::{Author, Description, Location};
use crate::error::{AppError, human_size};
use crate::state::AppState;
use crate::views::{Flash, Layout, PostFormValues, PostPage};

/// Longest text field accepted in the multipart form, in bytes.
const TEXT_FIELD_LIMIT: usize = 16 * 1024;

/// All text fields of one form together, in bytes: the form has three
/// short fields and a token, so this is generous, and it bounds what one
/// request can stream at the board besides its image.
const TEXT_TOTAL_LIMIT: usize = 64 * 1024;

/// Parts of one form: csrf, author, location, description and image, and
/// room for a browser's extras.
const FIELD_LIMIT: usize = 16;

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/post", get(post_form))
        // The upload limit is enforced while streaming (see `read_form`), so
        // the typed fields can be shown again when the image is too large.
        .route("/save", post(save).layer(DefaultBodyLimit::disable()))
        .route("/delete", post(delete))
}

fn post_page(
    state: &AppState,
    auth: &AuthContext,
    form: &PostFormValues,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<Response, AppError> {
    render_with(
        status,
        &PostPage {
            layout: Layout::new("New message", Some(auth), flash),
            form,
            errors: &form.errors,
            limit: &human_size(state.limits.upload_limit),
        },
    )
}

async fn post_form(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, AppError> {
    let form = PostFormValues {
        author: auth.user.username.clone(),
        ..PostFormValues::default()
    };
    post_page(&state, &auth, &form, flash, StatusCode::OK)
}

/// What the multipart form carried.
#[derive(Default)]
struct Upload {
    csrf: String,
    values: PostFormValues,
    image: Option<Bytes>,
    too_large: bool,
}

/// Reads the form, keeping at most `limit` bytes of image. A larger image
/// is read to its end (up to `drain_limit` bytes in all) and dropped, so the
/// browser gets the error page with the typed text instead of a reset.
async fn read_form(
    mut multipart: Multipart,
    limit: u64,
    drain_limit: u64,
) -> Result<Upload, AppError> {
    let bad = |e: axum::extract::multipart::MultipartError| AppError::BadRequest(e.body_text());
    let mut upload = Upload::default();
    let mut seen: u64 = 0;
    let (mut fields, mut text_total) = (0_usize, 0_usize);
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        fields += 1;
        if fields > FIELD_LIMIT {
            return Err(AppError::BadRequest(format!(
                "The form has too many fields (at most {FIELD_LIMIT})."
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        if name == "image" {
            let mut buf = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                seen += chunk.len() as u64;
                if seen > drain_limit {
                    return Err(AppError::TooLarge { limit });
                }
                if !upload.too_large && (buf.len() + chunk.len()) as u64 > limit {
                    upload.too_large = true;
                    buf = BytesMut::new();
                }
                if !upload.too_large {
                    buf.extend_from_slice(&chunk);
                }
            }
            if !upload.too_large && !buf.is_empty() {
                upload.image = Some(buf.freeze());
            }
            continue;
        }
        let mut text = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            seen += chunk.len() as u64;
            text_total += chunk.len();
            if text_total > TEXT_TOTAL_LIMIT {
                return Err(AppError::TextTooLarge {
                    limit: TEXT_TOTAL_LIMIT as u64,
                });
            }
            if text.len() + chunk.len() > TEXT_FIELD_LIMIT {
                return Err(AppError::BadRequest(format!(
                    "The field `{name}` is too long."
                )));
            }
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        match name.as_str() {
            "csrf" => upload.csrf = text,
            "author" => upload.values.author = text,
            "location" => upload.values.location = text,
            "description" => upload.values.description = text,
            _ => {}
        }
    }
    Ok(upload)
}

async fn save(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    // Past a post budget already: refused before the upload is read or
    // decoded (`Data::post` takes from the budgets and decides).
    state.data.may_post(&auth.user.id, ip).await?;
    let multipart = multipart.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let limit = state.limits.upload_limit;
    // Read (and discard) at most this much of an oversized upload.
    let drain_limit = limit.saturating_mul(2).saturating_add(1 << 20);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_limit) {
        return Err(AppError::TooLarge { limit });
    }
    let Upload {
        csrf,
        mut values,
        image,
        too_large,
    } = read_form(multipart, limit, drain_limit).await?;
    if !verify(Some(&auth), None, &csrf) {
        return Err(AppError::Csrf);
    }

    let author = Author::parse(&values.author)
        .map_err(|e| values.errors.push(e.0))
        .ok();
    let location = Location::parse(&values.location)
        .map_err(|e| values.errors.push(e.0))
        .ok();
    let description = Description::parse(&values.description)
        .map_err(|e| values.errors.push(e.0))
        .ok();
    if too_large {
        values.errors.push(format!(
            "The image is larger than {}. Please choose a smaller one.",
            human_size(limit)
        ));
        return post_page(&state, &auth, &values, None, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let Some(image) = image else {
        values.errors.push("Please choose an image.".into());
        return post_page(
            &state,
            &auth,
            &values,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let checked = state.workers.process_image(image).await?;
    let processed = match checked {
        Ok(p) => Some(p),
        Err(e) => {
            values.errors.push(e.to_string());
            None
        }
    };
    let (Some(author), Some(location), Some(description), Some(processed)) =
        (author, location, description, processed)
    else {
        return post_page(
            &state,
            &auth,
            &values,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };

    let new = NewMessage {
        user_id: auth.user.id.clone(),
        address: ip,
        author: author.into_inner(),
        location: location.into_inner(),
        description: description.into_inner(),
        image: (processed.kind, Bytes::from(processed.full)),
        thumbnail: (processed.thumb_kind, Bytes::from(processed.thumbnail)),
    };
    // `cache.delete_memoized(get_all_messages)` happens inside.
    let message = state.data.post(new, auth_mod::now_ms()).await?;
    tracing::info!(id = %message.id, user = %auth.user.username, "message posted");
    Ok(redirect_with(
        "/",
        Flash::Posted,
        secure(&state, &headers),
        vec![],
    ))
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

impl HasCsrf for DeleteForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn delete(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response, AppError> {
    let well_formed = form.id.len() == 32 && form.id.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(AppError::NotFound);
    }
    // The owner comes from the stored message, never from the form.
    let message = match state.data.delete_message(&form.id, &auth.user.id).await {
        Err(DataError::NotOwner) => {
            tracing::warn!(id = %form.id, user = %auth.user.username, "refused to delete another user's message");
            return Err(DataError::NotOwner.into());
        }
        other => other?,
    };
    tracing::info!(id = %message.id, user = %auth.user.username, "message deleted");
    Ok(redirect_with(
        "/my",
        Flash::Deleted,
        secure(&state, &headers),
        vec![],
    ))
}
