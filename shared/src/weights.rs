//! Weights files: safetensors with the architecture as JSON in the metadata
//! (the seam between the trainer, the samplers and the browser), written
//! atomically and protected by a SHA-256 checksum of the tensor bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::Dtype;
use sha2::{Digest, Sha256};

use crate::arch::Architecture;
use crate::error::{IndmError, Result};
use crate::params::{Param, ParamSet};

/// Metadata key of the architecture record.
pub const META_ARCH: &str = "indm.architecture";
/// Metadata key of the file format tag.
pub const META_FORMAT: &str = "indm.format";
/// Metadata key of the tensor checksum.
pub const META_SHA256: &str = "indm.sha256";
/// Format tag of model weights.
pub const FORMAT_WEIGHTS: &str = "indm-weights/1";

/// Named `f32` tensors plus string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    /// Tensors in file order.
    pub tensors: Vec<Param>,
    /// Metadata (excluding the checksum, which is added on write and checked on read).
    pub metadata: BTreeMap<String, String>,
}

fn checksum(tensors: &[Param]) -> String {
    let mut h = Sha256::new();
    let mut sorted: Vec<&Param> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for t in sorted {
        h.update(t.name.as_bytes());
        h.update([0]);
        for s in &t.shape {
            h.update((*s as u64).to_le_bytes());
        }
        for v in &t.data {
            h.update(v.to_le_bytes());
        }
    }
    format!("{:x}", h.finalize())
}

impl TensorFile {
    /// Serialises to safetensors bytes (with the checksum in the metadata).
    ///
    /// The header is written here rather than by the `safetensors` crate, whose metadata
    /// map is a `HashMap`: with sorted keys the same tensors and metadata always give the
    /// same bytes, so files can be compared and hashed. Reading uses the crate's parser.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut sorted: Vec<&Param> = self.tensors.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut header = serde_json::Map::new();
        let mut meta: BTreeMap<String, String> = self.metadata.clone();
        meta.insert(META_SHA256.into(), checksum(&self.tensors));
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(&meta).expect("string map"),
        );
        let mut offset = 0usize;
        for t in &sorted {
            if t.data.len() != t.shape.iter().product::<usize>() {
                return Err(IndmError::BadWeights {
                    path: t.name.clone(),
                    reason: format!("{} values for shape {:?}", t.data.len(), t.shape),
                });
            }
            if header.contains_key(&t.name) {
                return Err(IndmError::BadWeights {
                    path: t.name.clone(),
                    reason: "duplicate tensor name".into(),
                });
            }
            let end = offset + 4 * t.data.len();
            header.insert(
                t.name.clone(),
                serde_json::json!({ "dtype": "F32", "shape": t.shape, "data_offsets": [offset, end] }),
            );
            offset = end;
        }
        let mut json = serde_json::to_vec(&header).expect("JSON header");
        while !json.len().is_multiple_of(8) {
            json.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + json.len() + offset);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for t in &sorted {
            for v in &t.data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Parses safetensors bytes, checking dtypes, sizes and the checksum.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let bad = |reason: String| IndmError::BadWeights {
            path: origin.to_string(),
            reason,
        };
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let mut metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let expected_sum = metadata.remove(META_SHA256);
        let mut tensors = Vec::new();
        let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
        names.sort();
        for name in names {
            let view = st.tensor(&name).map_err(|e| bad(e.to_string()))?;
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!(
                    "tensor '{name}' has dtype {:?}, expected F32",
                    view.dtype()
                )));
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.push(Param {
                name,
                shape: view.shape().to_vec(),
                data,
            });
        }
        match expected_sum {
            Some(s) if s == checksum(&tensors) => {}
            Some(_) => return Err(bad("checksum mismatch: the tensor data is corrupt".into())),
            None => {
                return Err(bad(format!(
                    "no '{META_SHA256}' checksum in the metadata (not written by indm?)"
                )));
            }
        }
        Ok(TensorFile { tensors, metadata })
    }

    /// Writes atomically: temporary file in the same folder, fsync, rename, fsync the folder.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Reads and verifies a file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| IndmError::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| IndmError::io(dir, e))?;
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| IndmError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| IndmError::io(&tmp, e))?;
        f.sync_all().map_err(|e| IndmError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| IndmError::io(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A model's weights file: architecture + parameters (+ free-form metadata).
pub fn model_file(
    arch: &Architecture,
    params: &ParamSet,
    extra: &BTreeMap<String, String>,
) -> Result<TensorFile> {
    params.check_against(arch)?;
    let mut metadata = extra.clone();
    metadata.insert(META_FORMAT.into(), FORMAT_WEIGHTS.into());
    metadata.insert(
        META_ARCH.into(),
        serde_json::to_string(arch)
            .map_err(|e| IndmError::invalid("architecture", e, "serialisable"))?,
    );
    Ok(TensorFile {
        tensors: params.params.clone(),
        metadata,
    })
}

/// Saves a model atomically.
pub fn save_model(
    path: &Path,
    arch: &Architecture,
    params: &ParamSet,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    model_file(arch, params, extra)?.write_atomic(path)
}

/// Reads the architecture record of a file's metadata.
pub fn architecture_of(file: &TensorFile, origin: &str) -> Result<Architecture> {
    let json = file
        .metadata
        .get(META_ARCH)
        .ok_or_else(|| IndmError::BadWeights {
            path: origin.into(),
            reason: format!("no '{META_ARCH}' record in the metadata"),
        })?;
    let arch: Architecture = serde_json::from_str(json).map_err(|e| IndmError::BadWeights {
        path: origin.into(),
        reason: format!("architecture record is not valid: {e}"),
    })?;
    arch.validate()?;
    Ok(arch)
}

/// Extracts a model (architecture + parameters in architecture order) from a tensor file.
pub fn model_from_file(file: &TensorFile, origin: &str) -> Result<(Architecture, ParamSet)> {
    let arch = architecture_of(file, origin)?;
    let params = ParamSet {
        params: arch
            .param_specs()
            .iter()
            .map(|s| {
                file.get(&s.name)
                    .cloned()
                    .ok_or_else(|| IndmError::MissingTensor(s.name.clone()))
            })
            .collect::<Result<_>>()?,
    };
    params.check_against(&arch)?;
    Ok((arch, params))
}

/// Loads a model saved by [`save_model`].
pub fn load_model(path: &Path) -> Result<(Architecture, ParamSet, BTreeMap<String, String>)> {
    let file = TensorFile::read(path)?;
    let (arch, params) = model_from_file(&file, &path.display().to_string())?;
    Ok((arch, params, file.metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::FlowArch;
    use crate::sde::SdeKind;

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("indm-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn model_round_trips_with_its_architecture() {
        let arch = Architecture::default_2d(SdeKind::Vp, FlowArch::from_name("coupling").unwrap());
        let params = ParamSet::init(&arch, 4);
        let dir = tmpdir("roundtrip");
        let path = dir.join("m.safetensors");
        let mut extra = BTreeMap::new();
        extra.insert("indm.seed".to_string(), "4".to_string());
        save_model(&path, &arch, &params, &extra).unwrap();
        let (a2, p2, meta) = load_model(&path).unwrap();
        assert_eq!(a2, arch);
        assert_eq!(p2, params);
        assert_eq!(meta["indm.seed"], "4");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn corrupt_and_foreign_files_are_refused_with_reasons() {
        let arch = Architecture::default_2d(SdeKind::Vp, FlowArch::Identity);
        let params = ParamSet::init(&arch, 1);
        let bytes = model_file(&arch, &params, &BTreeMap::new())
            .unwrap()
            .to_bytes()
            .unwrap();
        // Flip one byte of tensor data (the end of the file).
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let e = TensorFile::from_bytes(&bad, "x").unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let e = TensorFile::from_bytes(b"hello", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
        // A file with a wrong shape names the tensor and both shapes.
        let mut f = TensorFile::from_bytes(&bytes, "x").unwrap();
        let t = f
            .tensors
            .iter_mut()
            .find(|t| t.name == "score.l1.weight")
            .unwrap();
        t.shape = vec![64, 256];
        let e = model_from_file(
            &TensorFile::from_bytes(&f.to_bytes().unwrap(), "x").unwrap(),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("score.l1.weight") && e.contains("[64, 256]") && e.contains("[128, 128]"),
            "{e}"
        );
    }

    #[test]
    fn the_same_content_gives_the_same_bytes() {
        let arch = Architecture::default_2d(SdeKind::Vp, FlowArch::Identity);
        let params = ParamSet::init(&arch, 1);
        let mut extra = BTreeMap::new();
        for k in ["b", "a", "c", "z", "y"] {
            extra.insert(format!("key.{k}"), k.to_string());
        }
        let a = model_file(&arch, &params, &extra)
            .unwrap()
            .to_bytes()
            .unwrap();
        let b = model_file(&arch, &params, &extra)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(a, b);
        // And the safetensors crate reads what we write.
        let st = safetensors::SafeTensors::deserialize(&a).unwrap();
        assert_eq!(st.names().len(), params.params.len());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_files() {
        let dir = tmpdir("atomic");
        let path = dir.join("f.bin");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(entries.len(), 1);
        std::fs::remove_dir_all(dir).ok();
    }
}
