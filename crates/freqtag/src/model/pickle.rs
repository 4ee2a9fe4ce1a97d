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

use std::cell::RefCell;
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

/// A decoded pickle value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` that fits in 64 bits.
    Int(i64),
    /// `int` too large for 64 bits (little-endian two's complement bytes).
    BigInt(Vec<u8>),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `list` (shared, since pickles mutate memoized lists).
    List(Rc<RefCell<Vec<Value>>>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `dict` or `OrderedDict`, in insertion order.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// An allow-listed global, not yet called.
    Global(String),
    /// A storage from a persistent id.
    Storage(StorageRef),
    /// A rebuilt tensor.
    Tensor(TensorRef),
}

impl Value {
    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn int_list(&self) -> Option<Vec<u64>> {
        let items: Vec<Value> = match self {
            Value::Tuple(v) => v.clone(),
            Value::List(v) => v.borrow().clone(),
            _ => return None,
        };
        items.iter().map(|v| v.as_int().and_then(|i| u64::try_from(i).ok())).collect()
    }
}

/// Decodes one pickle from `data`, starting at `pos`. Returns the value and the
/// position just after its STOP opcode.
pub fn load(data: &[u8], pos: usize) -> Result<(Value, usize), String> {
    let mut m = Machine { data, pos, stack: Vec::new(), marks: Vec::new(), memo: Vec::new() };
    let v = m.run()?;
    Ok((v, m.pos))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
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
        let n = rest.iter().position(|&b| b == b'\n').ok_or("truncated: unterminated text line")?;
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
    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack.last_mut().ok_or_else(|| "corrupt: empty stack".to_string())
    }
    fn put(&mut self, idx: usize) -> Result<(), String> {
        if idx > 1 << 24 {
            return Err(format!("corrupt: memo index {idx}"));
        }
        let v = self.stack.last().cloned().ok_or("corrupt: PUT on empty stack")?;
        if self.memo.len() <= idx {
            self.memo.resize(idx + 1, None);
        }
        self.memo[idx] = Some(v);
        Ok(())
    }
    fn get(&mut self, idx: usize) -> Result<(), String> {
        let v = self.memo.get(idx).cloned().flatten().ok_or_else(|| format!("corrupt: memo {idx} unset"))?;
        self.stack.push(v);
        Ok(())
    }
    fn text(&mut self, n: usize) -> Result<Value, String> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8(b.to_vec()).map_err(|_| "corrupt: invalid UTF-8 string")?))
    }

    fn run(&mut self) -> Result<Value, String> {
        loop {
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
                b'}' => self.stack.push(Value::Dict(Default::default())),
                b']' => self.stack.push(Value::List(Default::default())),
                b')' => self.stack.push(Value::Tuple(vec![])),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.stack.push(Value::Dict(Rc::new(RefCell::new(pairs))));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("corrupt: TUPLE on short stack".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
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
                    self.stack.push(if op == b'U' { bytes_or_str(b) } else { Value::Bytes(b) });
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(if op == b'T' { bytes_or_str(b) } else { Value::Bytes(b) });
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
                    let v = call(func, args)?;
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
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().push((k, v)),
                        _ => return Err("corrupt: SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let p = pairs(items)?;
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().extend(p),
                        _ => return Err("corrupt: SETITEMS on a non-dict".into()),
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        _ => return Err("corrupt: APPEND on a non-list".into()),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        _ => return Err("corrupt: APPENDS on a non-list".into()),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent(pid)?);
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
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, String> {
    if items.len() % 2 != 0 {
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
        Value::BigInt(b)
    }
}

fn bytes_or_str(b: Vec<u8>) -> Value {
    match String::from_utf8(b) {
        Ok(s) => Value::Str(s),
        Err(e) => Value::Bytes(e.into_bytes()),
    }
}

fn global(module: &str, name: &str) -> Result<Value, String> {
    let full = format!("{module}.{name}");
    if ALLOWED_GLOBALS.contains(&full.as_str()) {
        Ok(Value::Global(full))
    } else {
        Err(format!(
            "refusing pickle global `{full}`: a state_dict needs only {}; this file may try to run code",
            ALLOWED_GLOBALS.join(", ")
        ))
    }
}

fn persistent(pid: Value) -> Result<Value, String> {
    let Value::Tuple(t) = pid else { return Err("corrupt: persistent id is not a tuple".into()) };
    if t.first().and_then(Value::as_str) != Some("storage") || t.len() < 5 {
        return Err("unsupported persistent id (expected a ('storage', ...) tuple)".into());
    }
    let dtype = match &t[1] {
        Value::Global(g) => g.rsplit('.').next().unwrap_or(g).to_string(),
        _ => return Err("corrupt: storage type is not a global".into()),
    };
    let key = match &t[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err("corrupt: storage key".into()),
    };
    let numel = t[4].as_int().and_then(|i| u64::try_from(i).ok()).ok_or("corrupt: storage size")?;
    Ok(Value::Storage(StorageRef { key, dtype, numel }))
}

fn call(func: Value, args: Value) -> Result<Value, String> {
    let Value::Global(name) = func else { return Err("corrupt: REDUCE on a non-callable".into()) };
    let Value::Tuple(args) = args else { return Err("corrupt: REDUCE arguments are not a tuple".into()) };
    match name.as_str() {
        "collections.OrderedDict" => Ok(Value::Dict(Default::default())),
        "torch._utils._rebuild_tensor" | "torch._utils._rebuild_tensor_v2" => {
            if args.len() < 4 {
                return Err(format!("corrupt: {name} needs 4 arguments, got {}", args.len()));
            }
            let Value::Storage(storage) = args[0].clone() else {
                return Err("corrupt: tensor without storage".into());
            };
            let offset = args[1].as_int().and_then(|i| u64::try_from(i).ok()).ok_or("corrupt: storage offset")?;
            let shape = args[2].int_list().ok_or("corrupt: tensor shape")?;
            let stride = args[3].int_list().ok_or("corrupt: tensor stride")?;
            if shape.len() != stride.len() {
                return Err("corrupt: shape and stride differ in length".into());
            }
            Ok(Value::Tensor(TensorRef { storage, offset, shape, stride }))
        }
        "torch._utils._rebuild_parameter" => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err("corrupt: parameter without tensor".into()),
        },
        other => Err(format!("global `{other}` cannot be called")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_protocol2_dict_with_ints_and_strings() {
        // pickle.dumps({'a': 1, 'b': [2, 300]}, protocol=2)
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(K\x02M,\x01eu.";
        let (v, end) = load(p, 0).unwrap();
        assert_eq!(end, p.len());
        let Value::Dict(d) = v else { panic!() };
        let d = d.borrow();
        assert_eq!(d[0].0.as_str(), Some("a"));
        assert_eq!(d[0].1.as_int(), Some(1));
        assert_eq!(d[1].1.int_list(), Some(vec![2, 300]));
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
