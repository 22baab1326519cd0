//! Issuance to a device (`device-attest-01`): the inventory must know the
//! device and hold it in good standing, the MDM (when configured) must
//! vouch for it, and the certificate binds the attested identifiers.

use super::*;

impl AcmeDomain {
    /// The inventory's device for a permanent identifier, if it may have a
    /// certificate now (known, active, compliant).
    pub(super) fn device_in_good_standing(
        &self,
        id: &str,
    ) -> Result<crate::devices::Device, Problem> {
        let device = self
            .ledger
            .device(id)
            .map_err(|e| Problem::internal(e.to_string()))?
            .ok_or_else(|| {
                rejected(format!(
                    "device {id} is not in the inventory (custos devices add --serial ...)"
                ))
            })?;
        match device.refusal() {
            Some(reason) => Err(Problem::unauthorized(reason)),
            None => Ok(device),
        }
    }

    /// Issues now; returns the serial (hex).
    pub(super) fn issue_to(
        &self,
        csr: &VerifiedCsr,
        profile: &crate::ca::profile::Profile,
        identity: &Identity,
    ) -> Result<Serial, Problem> {
        let issued = self
            .authority
            .issue_verified(
                csr,
                profile,
                identity,
                &format!("acme:{}", identity.acme_account.as_deref().unwrap_or("?")),
                crate::model::time::unix_now(),
            )
            .map_err(issue_problem)?;
        Ok(issued.record.serial)
    }

    /// Asks the MDM (when configured) whether it manages the device; fails
    /// closed unless `fail_open`.
    pub(super) fn check_mdm(&self, serial: &str) -> Result<(), Problem> {
        let Some(mdm) = &self.mdm else {
            return Ok(());
        };
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| Problem::internal("no runtime for the MDM lookup"))?;
        match handle.block_on(mdm.is_managed(serial)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Problem::unauthorized(format!(
                "the MDM does not manage device {serial}; enrol it in the MDM first"
            ))),
            Err(e) if self.device_attest.mdm.fail_open => {
                tracing::warn!(serial, error = %e, "MDM lookup failed; issuing anyway (fail_open)");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(serial, error = %e, "MDM lookup failed; refusing (fail closed)");
                Err(Problem::unauthorized(format!(
                    "the MDM could not confirm device {serial} is managed ({e}); try again later"
                )))
            }
        }
    }

    /// A device certificate: one permanent-identifier, proved by device
    /// attestation, for the attested key, to a device still in good
    /// standing (checked again here, so a renewal of a device that went bad
    /// is refused).
    pub(super) fn issue_device(
        &self,
        order: &OrderRecord,
        account: &AccountRecord,
        csr_der: &[u8],
        attestations: &[serde_json::Value],
    ) -> Result<Serial, Problem> {
        let [id] = order.identifiers.as_slice() else {
            return Err(bad_csr(
                "a device order names exactly one permanent-identifier",
            ));
        };
        let device = self.device_in_good_standing(&id.value)?;
        self.check_mdm(&device.serial)?;
        // Checked again and issued under the device's lock, so a `lost`
        // event processed meanwhile either comes first (and this is
        // refused) or after (and revokes this certificate).
        let _one_at_a_time = crate::devices::device_lock(&device.serial);
        let device = self.device_in_good_standing(&id.value)?;
        let proved: crate::attestation::AttestedDevice = attestations
            .first()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(|| Problem::internal("the order's attestation is missing"))?;
        let csr = verify_csr(csr_der).map_err(|e| issue_problem(AdminError::Issue(e.into())))?;
        if csr.spki.subject_public_key.raw_bytes() != proved.public_key.as_slice() {
            return Err(bad_csr("CSR key is not the attested (hardware-bound) key"));
        }
        // Device certificates come from the device profile only: an order
        // may not ask for, say, a serverAuth profile for an attested key.
        let profile_name = self.device_attest.profile.as_str();
        if let Some(asked) = order.profile.as_deref().filter(|p| *p != profile_name) {
            return Err(Problem::malformed(format!(
                "device orders use the device profile {profile_name:?}, not {asked:?}"
            )));
        }
        let profile = self
            .authority
            .profiles()
            .get(Some(profile_name))
            .ok_or_else(|| {
                Problem::malformed(format!("profile {profile_name:?} does not exist"))
            })?;
        let identity = Identity {
            device: crate::ledger::DeviceIds {
                serial_number: Some(device.serial.clone()),
                udid: device.udid.clone().or(proved.udid.clone()),
                // The inventory's spelling, not the client's.
                permanent_id: Some(
                    if crate::ledger::normalize_device_id(&id.value) == device.serial {
                        device.serial.clone()
                    } else {
                        crate::ledger::normalize_device_id(&id.value)
                    },
                ),
            },
            acme_account: Some(account.id.clone()),
            ..Identity::default()
        };
        self.issue_to(&csr, profile, &identity)
    }
}

/// `badAttestationStatement` with a `rejectedIdentifier` subproblem: an
/// attestation of another device than the identifier.
pub(super) fn not_the_attested_device(identifier: &Identifier, detail: String) -> Problem {
    Problem::new(ProblemType::BadAttestationStatement, detail).with_subproblem(
        ProblemType::RejectedIdentifier,
        identifier.for_problem(),
        "not the attested device",
    )
}

impl AcmeDomain {
    /// Binds a verified TPM attestation to the order's device: the AK
    /// certificate's permanent identifier is the device, or the inventory
    /// maps the AK (`tpm_ak`, SHA-256 of its public key) to it. The device
    /// must be in good standing and, when configured, managed by the MDM.
    /// (The Apple OS and boot floors do not apply: a TPM attests keys, not
    /// an OS.)
    pub(super) fn bind_tpm(
        &self,
        identifier: &Identifier,
        mut proved: crate::attestation::AttestedDevice,
    ) -> Result<serde_json::Value, Problem> {
        let wanted = crate::ledger::normalize_device_id(&identifier.value);
        let ak = proved
            .tpm
            .as_ref()
            .map(|t| t.ak_sha256.clone())
            .unwrap_or_default();
        let by_san = proved
            .serial
            .as_deref()
            .map(crate::ledger::normalize_device_id)
            .is_some_and(|s| s == wanted);
        let device = self
            .ledger
            .device(&identifier.value)
            .map_err(|e| Problem::internal(e.to_string()))?;
        let by_inventory = device
            .as_ref()
            .and_then(|d| d.tpm_ak.as_deref())
            .is_some_and(|mapped| mapped.eq_ignore_ascii_case(&ak));
        if !by_san && !by_inventory {
            return Err(not_the_attested_device(
                identifier,
                format!(
                    "the attestation key names device {}, and the inventory does not map AK {ak} to {}",
                    proved.serial.as_deref().unwrap_or("(none)"),
                    identifier.value
                ),
            ));
        }
        let device = self.device_in_good_standing(&identifier.value)?;
        self.check_mdm(&device.serial)?;
        proved.serial = Some(device.serial.clone());
        tracing::info!(
            serial = %device.serial,
            tpm = proved.tpm.as_ref().map_or("?", |t| t.manufacturer.as_str()),
            "TPM attestation verified"
        );
        serde_json::to_value(&proved).map_err(|e| Problem::internal(e.to_string()))
    }
}
