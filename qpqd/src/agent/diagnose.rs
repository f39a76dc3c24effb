//! `diagnose`: what `qpq-ctl doctor` asks the daemon — the server's
//! `health` with our clock's offset, whether the session is still valid,
//! and the key-package stock on the server. Nothing here changes state: the
//! stock is read by uploading the kept last-resort package again.

use std::time::Instant;

use quicproquo_protocol::ipc::methods::{DiagnoseResult, KeyPackageStock, ServerHealth};
use quicproquo_protocol::types::Ciphersuite;
use quicproquo_protocol::wire;

use super::{Agent, AgentError, AgentResult};
use crate::core::CoreError;
use crate::db::{account, now_ms};
use crate::link::Link;

/// The server's clock minus ours, taking the request as sent half-way
/// through the round trip.
fn clock_offset_ms(server_ms: u64, sent_ms: u64, received_ms: u64) -> i64 {
    let midpoint = sent_ms / 2 + received_ms / 2;
    i64::try_from(server_ms)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(midpoint).unwrap_or(i64::MAX))
}

impl Agent {
    pub async fn diagnose(&self) -> AgentResult<DiagnoseResult> {
        let mut result = DiagnoseResult::default();
        let link = match self.link() {
            Ok(l) => l,
            Err(e) => {
                result.server_problem = e.to_string();
                result.session_problem = e.to_string();
                return Ok(result);
            }
        };
        match self.server_health(&link).await {
            Ok(h) => result.server = Some(h),
            Err(e) => result.server_problem = e.to_string(),
        }
        match self.key_package_stock(&link).await {
            Ok(stock) => {
                result.session_valid = true;
                result.key_packages = stock;
            }
            Err(e) => result.session_problem = e.to_string(),
        }
        Ok(result)
    }

    async fn server_health(&self, link: &Link) -> AgentResult<ServerHealth> {
        let use_ca = self
            .core()?
            .run(|c| account::get(c.db()))
            .await?
            .is_some_and(|a| a.use_ca);
        let (sent_ms, started) = (now_ms(), Instant::now());
        let info = link.request(wire::Health {}).await?;
        let round_trip = started.elapsed();
        Ok(ServerHealth {
            server_version: info.server_version,
            protocol_version: info.protocol_version,
            clock_offset_ms: clock_offset_ms(info.server_time_ms, sent_ms, now_ms()),
            round_trip_ms: u64::try_from(round_trip.as_millis()).unwrap_or(u64::MAX),
            trust: if use_ca { "ca" } else { "pinned" }.into(),
        })
    }

    /// Per suite, the one-time packages the server holds: the answer to an
    /// upload of nothing but the last-resort package we already keep there.
    async fn key_package_stock(&self, link: &Link) -> AgentResult<Vec<KeyPackageStock>> {
        let token = self.token()?;
        let mut stock = Vec::new();
        for suite in Ciphersuite::ALL {
            let kept = self
                .core()?
                .run(move |c| -> Result<_, CoreError> {
                    Ok(account::last_resort_with_age(
                        c.db(),
                        suite.code(),
                        now_ms(),
                    )?)
                })
                .await?;
            let Some((package, age_ms)) = kept else {
                stock.push(KeyPackageStock {
                    ciphersuite: suite,
                    available: 0,
                    last_resort_age_ms: None,
                });
                continue;
            };
            let available = link
                .request(wire::UploadKeyPackages {
                    auth: token.clone(),
                    packages: Vec::new(),
                    last_resort: Some(package),
                })
                .await
                .map_err(AgentError::from)?;
            stock.push(KeyPackageStock {
                ciphersuite: suite,
                available,
                last_resort_age_ms: Some(age_ms),
            });
        }
        Ok(stock)
    }
}

#[cfg(test)]
mod tests {
    use super::clock_offset_ms;

    #[test]
    fn the_clock_offset_takes_out_half_the_round_trip() {
        assert_eq!(clock_offset_ms(1_050, 1_000, 1_100), 0);
        assert_eq!(clock_offset_ms(61_050, 1_000, 1_100), 60_000);
        assert_eq!(clock_offset_ms(0, 120_000, 120_000), -120_000);
    }
}
