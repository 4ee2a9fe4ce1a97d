//! Small helpers to build and edit ONNX graphs (`onnx-protobuf` messages).

use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    NodeProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::collections::HashMap;

use protobuf::{Enum, EnumOrUnknown, MessageField};

/// ONNX element type code for float32.
pub const FLOAT: i32 = DataType::FLOAT as i32;
/// ONNX element type of float16.
pub const FLOAT16: i32 = DataType::FLOAT16 as i32;

/// A node with the given op, inputs, outputs and name.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// The version of the default (`ai.onnx`) operator set `proto` imports (13 when it
/// names none).
pub(crate) fn default_opset(proto: &onnx_protobuf::ModelProto) -> i64 {
    proto.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(13, |o| o.version)
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: EnumOrUnknown::new(AttributeType::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: EnumOrUnknown::new(AttributeType::INT), i: v, ..Default::default() }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), type_: EnumOrUnknown::new(AttributeType::FLOAT), f: v, ..Default::default() }
}

/// A float32 initializer tensor.
pub fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 initializer tensor.
pub fn tensor_i64(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: DataType::INT64.value(),
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Reads a float32 initializer (raw or `float_data`), if it is one.
pub fn read_f32(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != FLOAT {
        return None;
    }
    if !t.raw_data.is_empty() {
        Some(t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
    } else {
        Some(t.float_data.clone())
    }
}

/// A float tensor value-info; `dims` entries `None` are symbolic (named `N`), and
/// `None` for `dims` leaves the shape unknown.
pub fn value_info(name: &str, dims: Option<&[Option<i64>]>) -> ValueInfoProto {
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                value: Some(match d {
                    Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                    None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    ValueInfoProto {
        name: name.into(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: FLOAT,
                shape: shape.map(MessageField::some).unwrap_or_default(),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Static dims of a value-info (`None` where symbolic or unknown); `None` if no shape.
pub fn dims_of(v: &ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let Some(type_proto::Value::TensorType(t)) = v.type_.as_ref()?.value.as_ref() else { return None };
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
                _ => None,
            })
            .collect(),
    )
}

/// The element type a value-info declares (`None` when it declares none).
pub fn elem_type_of(v: &ValueInfoProto) -> Option<i32> {
    match v.type_.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t.elem_type),
        _ => None,
    }
}

/// Sets the element type a value-info declares (a tensor type is made if it has none).
pub fn set_elem_type(v: &mut ValueInfoProto, elem: i32) {
    let t = v.type_.mut_or_insert_default();
    match t.value.as_mut() {
        Some(type_proto::Value::TensorType(tt)) => tt.elem_type = elem,
        _ => {
            t.value = Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: elem, ..Default::default() }))
        }
    }
}

/// A metadata key/value pair.
pub fn meta(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: key.into(), value: value.into(), ..Default::default() }
}

/// Shapes of probed tensors by name (per frame, batch axis removed, or in full where said).
pub(crate) type Shapes = HashMap<String, Vec<usize>>;

/// An integer or integer-list attribute of `n` as a list (`[i]` for an integer).
pub(crate) fn int_attr(n: &NodeProto, k: &str) -> Option<Vec<i64>> {
    n.attribute.iter().find(|a| a.name == k).map(|a| if a.ints.is_empty() { vec![a.i] } else { a.ints.clone() })
}

/// The int64 values of a constant tensor (initializer or Constant node).
pub(crate) fn const_ints(g: &GraphProto, name: &str) -> Option<Vec<i64>> {
    let t = g.initializer.iter().find(|t| t.name == name).or_else(|| {
        g.node
            .iter()
            .find(|n| n.op_type == "Constant" && n.output.first().map(|s| s.as_str()) == Some(name))
            .and_then(|n| n.attribute.iter().find(|a| a.name == "value"))
            .and_then(|a| a.t.as_ref())
    })?;
    if !t.raw_data.is_empty() && t.data_type == 7 {
        Some(t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
    } else if t.data_type == 7 {
        Some(t.int64_data.clone())
    } else {
        None
    }
}
