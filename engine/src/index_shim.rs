//! Temporary BTreeMap index until the ART lands.
use std::collections::BTreeMap;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValuePointer {
    pub segment: u32,
    pub offset: u32,
    pub length: u32,
    pub sequence_low: u32,
}
#[derive(Default)]
pub struct Art {
    map: BTreeMap<Vec<u8>, ValuePointer>,
}
impl Art {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn get(&self, key: &[u8]) -> Option<ValuePointer> {
        self.map.get(key).copied()
    }
    pub fn insert(&mut self, key: &[u8], value: ValuePointer) -> Option<ValuePointer> {
        self.map.insert(key.to_vec(), value)
    }
    pub fn remove(&mut self, key: &[u8]) -> Option<ValuePointer> {
        self.map.remove(key)
    }
    pub fn memory_bytes(&self) -> usize {
        self.map.len() * 64
    }
    pub fn for_each(&self, mut f: impl FnMut(&[u8], ValuePointer)) {
        for (k, v) in &self.map {
            f(k, *v)
        }
    }
}
