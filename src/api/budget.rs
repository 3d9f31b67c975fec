//! A memory budget for request bodies that are read whole (bulk ingest),
//! shared by all requests. A body's declared length is reserved before any
//! of it is read; a body of unknown length reserves as it arrives. A body
//! the budget cannot hold now is refused at once, so concurrent large
//! bodies cannot add up to more memory than the budget.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The budget is counted in units of this many bytes (a semaphore hands
/// out at most `u32::MAX` permits at a time).
const UNIT: usize = 1024;

pub struct BodyBudget {
    units: Semaphore,
}

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyRefused {
    /// Declared, or found, to be larger than the per-request limit.
    TooLarge,
    /// The budget is taken by other requests' bodies for now.
    OverBudget,
    /// The client went away or sent a broken body.
    Broken,
}

/// Budget held for a body; returned to the budget when dropped, so keep it
/// for as long as the body (or what is made from it) is in memory.
#[must_use]
pub struct Reservation<'a> {
    _held: SemaphorePermit<'a>,
}

fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        Self {
            units: Semaphore::new(units),
        }
    }

    fn reserve(&self, units: u32) -> Result<SemaphorePermit<'_>, BodyRefused> {
        self.units
            .try_acquire_many(units)
            .map_err(|_| BodyRefused::OverBudget)
    }

    /// Reads `body`, at most `limit` bytes, within the budget.
    pub async fn read(
        &self,
        mut body: Body,
        limit: usize,
    ) -> Result<(Bytes, Reservation<'_>), BodyRefused> {
        let declared = body.size_hint().exact();
        let declared = match declared.map(usize::try_from) {
            Some(Ok(length)) if length <= limit => Some(length),
            Some(_) => return Err(BodyRefused::TooLarge),
            None => None,
        };
        let mut reserved = self.reserve(units(declared.unwrap_or(0)))?;
        let mut buffer = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyRefused::Broken)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let length = buffer.len() + data.len();
            if length > limit {
                return Err(BodyRefused::TooLarge);
            }
            let more = units(length).saturating_sub(reserved.num_permits() as u32);
            if more > 0 {
                reserved.merge(self.reserve(more)?);
            }
            buffer.extend_from_slice(&data);
        }
        Ok((Bytes::from(buffer), Reservation { _held: reserved }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: Vec<&'static [u8]>) -> Body {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn declared_bodies_are_reserved_whole_before_reading() {
        let budget = BodyBudget::new(4 * UNIT);
        let (first, held) = budget
            .read(Body::from(vec![b'a'; 3 * UNIT]), 4 * UNIT)
            .await
            .unwrap();
        assert_eq!(first.len(), 3 * UNIT);
        let second = budget.read(Body::from(vec![b'b'; 2 * UNIT]), 4 * UNIT);
        assert_eq!(second.await.err(), Some(BodyRefused::OverBudget));
        drop(held);
        let third = budget.read(Body::from(vec![b'c'; 2 * UNIT]), 4 * UNIT);
        assert!(third.await.is_ok(), "the budget is returned");
        let too_long = budget.read(Body::from(vec![b'd'; 5 * UNIT]), 4 * UNIT);
        assert_eq!(too_long.await.err(), Some(BodyRefused::TooLarge));
    }

    #[tokio::test]
    async fn bodies_of_unknown_length_reserve_as_they_arrive() {
        static KIB: [u8; UNIT] = [b'x'; UNIT];
        let budget = BodyBudget::new(4 * UNIT);
        let (_, held) = budget
            .read(chunked(vec![&KIB, &KIB]), 8 * UNIT)
            .await
            .unwrap();
        assert_eq!(budget.units.available_permits(), 2, "two units held");
        let over = budget.read(chunked(vec![&KIB, &KIB, &KIB]), 8 * UNIT);
        assert_eq!(over.await.err(), Some(BodyRefused::OverBudget));
        let too_long = budget.read(chunked(vec![&KIB, &KIB]), UNIT + 10);
        assert_eq!(too_long.await.err(), Some(BodyRefused::TooLarge));
        drop(held);
        let (body, _) = budget
            .read(chunked(vec![&KIB, &KIB, b"tail"]), 8 * UNIT)
            .await
            .unwrap();
        assert_eq!(body.len(), 2 * UNIT + 4);
    }
}
