//! A restricted pickle reader for PyTorch checkpoints.
//!
//! Written by hand because no maintained Rust crate reads PyTorch's *legacy* (pre-1.6)
//! serialization, and the general pickle crates either refuse persistent ids or resolve
//! globals by name. This one never executes anything: it is a data-only stack machine
//! that knows the opcodes of protocols 0-5 that a `state_dict` uses, and it accepts only
//! an allow-list of globals ([`ALLOWED_GLOBALS`]), each rebuilt natively. Any other
//! global is an error that names it. Every length read from the stream is checked
//! against the bytes that remain, so a truncated or corrupted file is an error, never
//! a panic or a huge allocation.
//!
//! Bounded by construction: containers (lists, tuples, dicts) live in an arena and
//! values refer to them by index, so a value is never recursive. Copying a value (a
//! memo GET, DUP) is O(1) whatever it holds (no memo bomb), dropping is flat (no stack
//! overflow on deep nesting), and a list that contains itself is just an index that
//! points back (no infinite recursion: nothing formats or walks decoded values
//! without a depth limit, [`MAX_DEPTH`]). The memo is a map, so a huge memo index costs
//! nothing, and every opcode adds at most one value, so memory is linear in the
//! stream's length.

use std::collections::HashMap;
use std::rc::Rc;

/// The globals a checkpoint may name. Anything else is refused.
pub const ALLOWED_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch.FloatStorage",
    "torch.DoubleStorage",
    "torch.HalfStorage",
    "torch.BFloat16Storage",
    "torch.LongStorage",
    "torch.IntStorage",
    "torch.ShortStorage",
    "torch.CharStorage",
    "torch.ByteStorage",
    "torch.BoolStorage",
    "torch.float32",
    "torch.float64",
    "torch.float16",
    "torch.int64",
];

/// Deepest container nesting a consumer follows ([`Pickle::get`] users stop there).
pub const MAX_DEPTH: usize = 64;

/// Most opcodes one pickle may run. Each adds at most one value, container or memo
/// entry (at most about 64 bytes), so a pickle's memory is at most about 130 MB
/// beside the bytes of its strings, whatever its length: a 16 MB pickle of nested
/// lists took 1.3 GB before. A `state_dict` runs about 20 per tensor (ResNet-56: 7,000).
pub const MAX_OPS: usize = 1 << 21;

/// A reference to raw storage bytes, from a pickle persistent id.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Storage key (legacy: the root key; zip: the file name under `data/`).
    pub key: String,
    /// Element type name, e.g. `FloatStorage`.
    pub dtype: String,
    /// Number of elements the pickle says the storage has.
    pub numel: u64,
}

/// A tensor as the pickle describes it: a view into a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage it views.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
}

/// A decoded pickle value. Containers are indices into [`Pickle::containers`], so a
/// value is small, cheap to copy and never recursive.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` that fits in 64 bits.
    Int(i64),
    /// `int` too large for 64 bits (little-endian two's complement bytes).
    BigInt(Rc<[u8]>),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(Rc<str>),
    /// `bytes`.
    Bytes(Rc<[u8]>),
    /// `list`, `tuple` or `dict`: index into [`Pickle::containers`].
    Container(usize),
    /// An allow-listed global, not yet called.
    Global(&'static str),
    /// A storage from a persistent id.
    Storage(Rc<StorageRef>),
    /// A rebuilt tensor.
    Tensor(Rc<TensorRef>),
}

/// A list, tuple or dict of a pickle.
#[derive(Debug, Clone)]
pub enum Container {
    /// `list` (mutable while decoding).
    List(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `dict` or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
}

/// A decoded pickle: its root value and the containers values refer to.
#[derive(Debug, Clone)]
pub struct Pickle {
    /// The value the stream's STOP returned.
    pub root: Value,
    /// Every container built while decoding.
    pub containers: Vec<Container>,
}

impl Pickle {
    /// The container a value refers to, if it is one.
    pub fn get(&self, v: &Value) -> Option<&Container> {
        match v {
            Value::Container(i) => self.containers.get(*i),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn items(&self, v: &Value) -> Option<&[Value]> {
        match self.get(v)? {
            Container::List(x) | Container::Tuple(x) => Some(x),
            Container::Dict(_) => None,
        }
    }

    /// The pairs of a dict.
    pub fn pairs(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match self.get(v)? {
            Container::Dict(x) => Some(x),
            _ => None,
        }
    }
}

impl Value {
    /// The integer of an `int` or `bool`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short description for error messages: the kind only, never the contents.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Container(_) => "container",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// Decodes one pickle from `data`, starting at `pos`. Returns it and the position
/// just after its STOP opcode.
pub fn load(data: &[u8], pos: usize) -> Result<(Pickle, usize), String> {
    let mut m = Machine { data, pos, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), arena: Vec::new() };
    let v = m.run()?;
    Ok((Pickle { root: v, containers: m.arena }, m.pos))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<usize, Value>,
    arena: Vec<Container>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| {
            format!("truncated: needs {n} bytes at offset {} but the file has {}", self.pos, self.data.len())
        })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().take(1 << 16).position(|&b| b == b'\n').ok_or("corrupt: unterminated text line")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
    fn pop(&mut self) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| format!("corrupt: stack underflow at offset {}", self.pos))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let m = self.marks.pop().ok_or("corrupt: MARK missing")?;
        if m > self.stack.len() {
            return Err("corrupt: MARK beyond the stack".into());
        }
        Ok(self.stack.split_off(m))
    }
    fn top(&mut self) -> Result<&Value, String> {
        self.stack.last().ok_or_else(|| "corrupt: empty stack".to_string())
    }
    fn new_container(&mut self, c: Container) -> Value {
        self.arena.push(c);
        Value::Container(self.arena.len() - 1)
    }
    /// The container under the top of the stack, for in-place updates.
    fn top_container(&mut self) -> Result<&mut Container, String> {
        match self.top()? {
            Value::Container(i) => {
                let i = *i;
                Ok(&mut self.arena[i])
            }
            v => Err(format!("corrupt: update of a {}", v.kind())),
        }
    }
    fn put(&mut self, idx: usize) -> Result<(), String> {
        let v = self.top().map_err(|_| "corrupt: PUT on empty stack".to_string())?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }
    fn get(&mut self, idx: usize) -> Result<(), String> {
        let v = self.memo.get(&idx).cloned().ok_or_else(|| format!("corrupt: memo {idx} unset"))?;
        self.stack.push(v);
        Ok(())
    }
    fn text(&mut self, n: usize) -> Result<Value, String> {
        let b = self.take(n)?;
        Ok(Value::Str(std::str::from_utf8(b).map_err(|_| "corrupt: invalid UTF-8 string")?.into()))
    }

    fn run(&mut self) -> Result<Value, String> {
        for _ in 0..=MAX_OPS {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.u64()?;
                } // FRAME: framing is transparent
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => {
                    let v = self.new_container(Container::Dict(Vec::new()));
                    self.stack.push(v);
                }
                b']' => {
                    let v = self.new_container(Container::List(Vec::new()));
                    self.stack.push(v);
                }
                b')' => {
                    let v = self.new_container(Container::Tuple(Vec::new()));
                    self.stack.push(v);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.new_container(Container::Tuple(items));
                    self.stack.push(v);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.new_container(Container::List(items));
                    self.stack.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    let v = self.new_container(Container::Dict(pairs));
                    self.stack.push(v);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("corrupt: TUPLE on short stack".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.new_container(Container::Tuple(items));
                    self.stack.push(v);
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.parse().map_err(|_| format!("corrupt: INT {s:?}"))?),
                    };
                    self.stack.push(v);
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(long(b));
                }
                0x8b => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(long(b));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = usize::try_from(self.u64()?).map_err(|_| "corrupt: length")?;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(if op == b'U' { bytes_or_str(b) } else { Value::Bytes(b.into()) });
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(if op == b'T' { bytes_or_str(b) } else { Value::Bytes(b.into()) });
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'q' => {
                    let i = self.u8()? as usize;
                    self.put(i)?;
                }
                b'r' => {
                    let i = self.u32()? as usize;
                    self.put(i)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let i = l.parse().map_err(|_| "corrupt: PUT index")?;
                    self.put(i)?;
                }
                0x94 => {
                    let i = self.memo.len();
                    self.put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as usize;
                    self.get(i)?;
                }
                b'j' => {
                    let i = self.u32()? as usize;
                    self.get(i)?;
                }
                b'g' => {
                    let l = self.line()?;
                    let i = l.parse().map_err(|_| "corrupt: GET index")?;
                    self.get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(global(&module, &name)?);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            let g = global(m, n)?;
                            self.stack.push(g);
                        }
                        _ => return Err("corrupt: STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(func, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: state for an object. The only objects here are containers and
                    // tensors, whose extra state (OrderedDict `_metadata`, parameter hooks)
                    // carries no numbers, so it is dropped.
                    self.pop()?;
                    self.top()?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top_container()? {
                        Container::Dict(d) => d.push((k, v)),
                        _ => return Err("corrupt: SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let p = pairs(items)?;
                    match self.top_container()? {
                        Container::Dict(d) => d.extend(p),
                        _ => return Err("corrupt: SETITEMS on a non-dict".into()),
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top_container()? {
                        Container::List(l) => l.push(v),
                        _ => return Err("corrupt: APPEND on a non-list".into()),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top_container()? {
                        Container::List(l) => l.extend(items),
                        _ => return Err("corrupt: APPENDS on a non-list".into()),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.stack.push(v);
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                other => {
                    return Err(format!(
                        "unsupported or corrupt pickle opcode 0x{other:02x} at offset {}",
                        self.pos - 1
                    ))
                }
            }
        }
        Err(format!("more than {MAX_OPS} pickle opcodes: not a state_dict (a checkpoint runs about 20 per tensor)"))
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err("corrupt: odd number of dict items".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn long(b: Vec<u8>) -> Value {
    if b.len() <= 8 {
        let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
        let mut buf = [if neg { 0xff } else { 0 }; 8];
        buf[..b.len()].copy_from_slice(&b);
        Value::Int(i64::from_le_bytes(buf))
    } else {
        Value::BigInt(b.into())
    }
}

fn bytes_or_str(b: Vec<u8>) -> Value {
    match String::from_utf8(b) {
        Ok(s) => Value::Str(s.into()),
        Err(e) => Value::Bytes(e.into_bytes().into()),
    }
}

fn global(module: &str, name: &str) -> Result<Value, String> {
    let full = format!("{module}.{name}");
    if let Some(g) = ALLOWED_GLOBALS.iter().find(|g| **g == full) {
        Ok(Value::Global(g))
    } else {
        Err(format!(
            "refusing pickle global `{full}`: a state_dict needs only {}; this file may try to run code",
            ALLOWED_GLOBALS.join(", ")
        ))
    }
}

impl Machine<'_> {
    fn items(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Container(i) => match &self.arena[*i] {
                Container::Tuple(x) | Container::List(x) => Some(x),
                Container::Dict(_) => None,
            },
            _ => None,
        }
    }

    fn int_list(&self, v: &Value) -> Option<Vec<u64>> {
        let items = self.items(v)?;
        if items.len() > 64 {
            return None; // no tensor has more dimensions
        }
        items.iter().map(|v| v.as_int().and_then(|i| u64::try_from(i).ok())).collect()
    }

    fn persistent(&mut self, pid: Value) -> Result<Value, String> {
        let t = match &pid {
            Value::Container(i) => match &self.arena[*i] {
                Container::Tuple(t) => t,
                _ => return Err("corrupt: persistent id is not a tuple".into()),
            },
            _ => return Err("corrupt: persistent id is not a tuple".into()),
        };
        if t.first().and_then(Value::as_str) != Some("storage") || t.len() < 5 {
            return Err("unsupported persistent id (expected a ('storage', ...) tuple)".into());
        }
        let dtype = match &t[1] {
            Value::Global(g) => g.rsplit('.').next().unwrap_or(g).to_string(),
            _ => return Err("corrupt: storage type is not a global".into()),
        };
        let key = match &t[2] {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return Err("corrupt: storage key".into()),
        };
        let numel = t[4].as_int().and_then(|i| u64::try_from(i).ok()).ok_or("corrupt: storage size")?;
        Ok(Value::Storage(Rc::new(StorageRef { key, dtype, numel })))
    }

    fn call(&mut self, func: Value, args: Value) -> Result<Value, String> {
        let Value::Global(name) = func else { return Err("corrupt: REDUCE on a non-callable".into()) };
        let args: Vec<Value> = match &args {
            Value::Container(i) => match &self.arena[*i] {
                Container::Tuple(t) => t.iter().take(8).cloned().collect(),
                _ => return Err("corrupt: REDUCE arguments are not a tuple".into()),
            },
            _ => return Err("corrupt: REDUCE arguments are not a tuple".into()),
        };
        match name {
            "collections.OrderedDict" => Ok(self.new_container(Container::Dict(Vec::new()))),
            "torch._utils._rebuild_tensor" | "torch._utils._rebuild_tensor_v2" => {
                if args.len() < 4 {
                    return Err(format!("corrupt: {name} needs 4 arguments, got {}", args.len()));
                }
                let Value::Storage(storage) = &args[0] else {
                    return Err("corrupt: tensor without storage".into());
                };
                let offset = args[1].as_int().and_then(|i| u64::try_from(i).ok()).ok_or("corrupt: storage offset")?;
                let shape = self.int_list(&args[2]).ok_or("corrupt: tensor shape")?;
                let stride = self.int_list(&args[3]).ok_or("corrupt: tensor stride")?;
                if shape.len() != stride.len() {
                    return Err("corrupt: shape and stride differ in length".into());
                }
                Ok(Value::Tensor(Rc::new(TensorRef { storage: (**storage).clone(), offset, shape, stride })))
            }
            "torch._utils._rebuild_parameter" => match args.into_iter().next() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => Err("corrupt: parameter without tensor".into()),
            },
            other => Err(format!("global `{other}` cannot be called")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_pickle_of_millions_of_nested_lists_is_refused_at_the_opcode_budget() {
        // EMPTY_LIST, then APPEND it into the list below, 3 million times over (the
        // 16 MB shape that took 1.3 GB): refused once MAX_OPS opcodes have run.
        let mut data = b"\x80\x02]".to_vec();
        for _ in 0..3_000_000 {
            data.extend_from_slice(b"]a");
        }
        data.push(b'.');
        let e = load(&data, 0).unwrap_err();
        assert!(e.contains("pickle opcodes") && e.contains(&MAX_OPS.to_string()), "{e}");
        // Under the budget the same shape loads.
        let mut small = b"\x80\x02]".to_vec();
        for _ in 0..1000 {
            small.extend_from_slice(b"]a");
        }
        small.push(b'.');
        assert!(load(&small, 0).is_ok());
    }

    #[test]
    fn decodes_protocol2_dict_with_ints_and_strings() {
        // pickle.dumps({'a': 1, 'b': [2, 300]}, protocol=2)
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(K\x02M,\x01eu.";
        let (v, end) = load(p, 0).unwrap();
        assert_eq!(end, p.len());
        let d = v.pairs(&v.root).unwrap();
        assert_eq!(d[0].0.as_str(), Some("a"));
        assert_eq!(d[0].1.as_int(), Some(1));
        let l: Vec<i64> = v.items(&d[1].1).unwrap().iter().map(|x| x.as_int().unwrap()).collect();
        assert_eq!(l, vec![2, 300]);
    }

    #[test]
    fn refuses_arbitrary_global() {
        // pickle of os.system('echo') : c os\nsystem\n(S'echo'\ntR.
        let p = b"cos\nsystem\n(S'echo'\ntR.";
        let err = load(p, 0).unwrap_err();
        assert!(err.contains("refusing pickle global `os.system`"), "{err}");
    }

    #[test]
    fn truncated_stream_is_an_error_not_a_panic() {
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K";
        for n in 0..p.len() {
            assert!(load(&p[..n], 0).is_err());
        }
    }

    #[test]
    fn long1_decodes_negative_and_big() {
        assert_eq!(long(vec![0xff]).as_int(), Some(-1));
        assert_eq!(long(vec![0x6a, 0xa8]).as_int(), Some(-22422));
        assert!(matches!(long(vec![1; 10]), Value::BigInt(_)));
    }
}
