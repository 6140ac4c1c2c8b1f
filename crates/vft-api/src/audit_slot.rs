//! What one request tells its audit record: the middleware in [`crate::audit`] gives each
//! request an [`AuditSlot`], the authentication extractors note who made it and for which
//! municipality, and handlers note what they showed ([`AuditNote`]). A module of its own so
//! that `auth` can note into it without depending on the audit log's writer and routes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::{Arc, Mutex};
use vft_domain::{MunicipalityCode, Principal};

/// What the extractors and handlers of one request tell its audit record.
#[derive(Debug, Default)]
pub struct AuditSlotData {
    pub(crate) principal: Option<Principal>,
    pub(crate) unknown_credential: bool,
    pub(crate) municipality: Option<String>,
    pub(crate) subjects: Vec<String>,
    /// Subjects left out past [`vft_domain::audit::MAX_SUBJECTS`].
    pub(crate) more_subjects: usize,
}

#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<AuditSlotData>>);

impl AuditSlot {
    fn with(parts: &Parts, f: impl FnOnce(&mut AuditSlotData)) {
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            f(&mut slot
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner));
        }
    }

    pub(crate) fn note_principal(parts: &Parts, principal: &Principal) {
        Self::with(parts, |d| d.principal = Some(principal.clone()));
    }

    pub(crate) fn note_unknown_credential(parts: &Parts) {
        Self::with(parts, |d| d.unknown_credential = true);
    }

    pub(crate) fn note_municipality(parts: &Parts, municipality: Option<&MunicipalityCode>) {
        Self::with(parts, |d| {
            d.municipality = municipality.map(ToString::to_string);
        });
    }

    /// What was noted, leaving the slot empty (the middleware, once the response is ready).
    pub(crate) fn take(&self) -> AuditSlotData {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// A handler's way to say what it showed or changed (device keys, recipient references,
/// usernames), beyond the route's path parameters, which are recorded anyway.
pub struct AuditNote(AuditSlot);

impl<S: Send + Sync> FromRequestParts<S> for AuditNote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<AuditSlot>()
                .cloned()
                .unwrap_or_default(),
        ))
    }
}

impl AuditNote {
    pub fn subjects<I, T>(&self, subjects: I)
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let mut d = self
            .0
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in subjects {
            if d.subjects.len() < vft_domain::audit::MAX_SUBJECTS - 1 {
                d.subjects.push(s.into());
            } else {
                d.more_subjects += 1;
            }
        }
    }
}
