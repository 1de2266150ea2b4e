"""TFLite -> ONNX for MediaPipe's face detector and face mesh (docs/onnx_landmarks.md says why here).

The three networks use a dozen TFLite builtin ops (CONV_2D, DEPTHWISE_CONV_2D, ADD, RELU, PRELU, PAD,
MAX_POOL_2D, RESHAPE, CONCATENATION, RESIZE_BILINEAR, DEPTH_TO_SPACE, plus DEQUANTIZE/DENSIFY on
weights). tflite2onnx 0.4.1 converted only the short-range detector (DENSIFY unsupported, the mesh
crashed), so this module reads the flatbuffer with the `tflite` parser and writes each op as its ONNX
counterpart. Weights stored as fp16 (DEQUANTIZE) or sparse (DENSIFY) are folded to dense fp32 here.

Layout: TFLite is NHWC. The graph transposes its input to NCHW once, runs every 4-D op in NCHW (what
ONNX convolution expects), and transposes back before a RESHAPE (whose meaning depends on the layout)
and at 4-D outputs; inputs and outputs keep TFLite's shapes with a dynamic batch dimension.
"""

from __future__ import annotations

import numpy as np

from aucues.errors import AucuesError

OPSET = 17
_NCHW = (0, 3, 1, 2)
_NHWC = (0, 2, 3, 1)
_NP_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}


def _options(op, cls):
    table = op.BuiltinOptions()
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    return opt


def _same_pads(in_hw, k_hw, stride_hw, dil_hw=(1, 1)) -> list[int]:
    """TF 'SAME' padding as ONNX pads [top, left, bottom, right]: the odd pixel goes at the end."""
    begin, end = [], []
    for n, k, s, d in zip(in_hw, k_hw, stride_hw, dil_hw):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def _densify(values: np.ndarray, sp, shape: tuple[int, ...]) -> np.ndarray:
    """Dense tensor of a TFLite sparse tensor (traversal order, block map, DENSE / SPARSE_CSR levels).

    Walks the levels breadth-first with numpy: every level expands the list of partial coordinates in
    traversal order, so the k-th full coordinate belongs to the k-th stored value.
    """
    rank = len(shape)
    order = list(sp.TraversalOrderAsNumpy())
    block_map = list(sp.BlockMapAsNumpy()) if sp.BlockMapLength() else []
    pos = np.zeros(1, np.int64)           # segment position of each partial coordinate
    coords: list[np.ndarray] = []
    for level in range(sp.DimMetadataLength()):
        md = sp.DimMetadata(level)
        if md.Format() == 0:  # DENSE
            n = md.DenseSize()
            coords = [np.repeat(c, n) for c in coords] + [np.tile(np.arange(n), len(pos))]
            pos = (pos[:, None] * n + np.arange(n)[None, :]).reshape(-1)
        else:  # SPARSE_CSR
            segs = _union_vector(md.ArraySegments(), md.ArraySegmentsType())
            idx = _union_vector(md.ArrayIndices(), md.ArrayIndicesType())
            counts = segs[pos + 1] - segs[pos]
            starts = np.repeat(segs[pos], counts)
            offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            new_pos = starts + offs
            coords = [np.repeat(c, counts) for c in coords] + [idx[new_pos]]
            pos = new_pos
    full = [None] * rank
    for level, dim in enumerate(order[:rank]):
        full[dim] = coords[level]
    for j, dim in enumerate(block_map):  # block levels follow the rank outer ones
        bsize = sp.DimMetadata(rank + j).DenseSize()
        full[dim] = full[dim] * bsize + coords[order.index(rank + j)]
    dense = np.zeros(shape, values.dtype)
    dense[tuple(full)] = values[: len(full[0])]
    return dense


def _union_vector(table, kind) -> np.ndarray:
    import tflite

    cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
    v = cls()
    v.Init(table.Bytes, table.Pos)
    return v.ValuesAsNumpy().astype(np.int64)


class _Graph:
    """Builds the ONNX graph op by op; tensors are tracked by TFLite index."""

    def __init__(self, model, sub):
        self.m, self.g = model, sub
        self.nodes: list = []
        self.inits: list = []
        self.const: dict[int, np.ndarray] = {}
        self.name: dict[int, str] = {}
        self.nchw: dict[int, bool] = {}
        self._n = 0
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            buf = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() else 0
            if isinstance(buf, np.ndarray) and buf.size:
                arr = np.frombuffer(buf.tobytes(), _NP_TYPES[t.Type()])
                if t.Sparsity() is not None:
                    self.const[i] = ("sparse", arr, t.Sparsity())
                else:
                    self.const[i] = arr.reshape(tuple(t.ShapeAsNumpy()))

    # -- helpers ---------------------------------------------------------------------------------
    def uid(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.g.Tensors(i).ShapeAsNumpy())

    def init(self, arr: np.ndarray, base: str = "w") -> str:
        from onnx import numpy_helper

        name = self.uid(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        from onnx import helper

        out = self.uid(base)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def dense_const(self, i: int) -> np.ndarray:
        c = self.const[i]
        if isinstance(c, tuple):
            _, arr, sp = c
            c = self.const[i] = _densify(arr, sp, self.shape(i))
        return c

    def act(self, x: str, fused: int) -> str:
        if fused == 0:
            return x
        if fused == 1:
            return self.node("Relu", [x], "relu")
        if fused == 3:
            return self.node("Clip", [x, self.init(np.float32(0), "lo"), self.init(np.float32(6), "hi")], "relu6")
        raise AucuesError(f"unsupported fused activation {fused}")

    def as_nhwc(self, i: int) -> str:
        return self.node("Transpose", [self.name[i]], "nhwc", perm=list(_NHWC)) if self.nchw[i] else self.name[i]

    def set(self, i: int, name: str, nchw: bool) -> None:
        self.name[i], self.nchw[i] = name, nchw

    # -- ops -------------------------------------------------------------------------------------
    def run(self) -> None:
        import tflite

        ops = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        for k in range(self.g.OperatorsLength()):
            op = self.g.Operators(k)
            oc = self.m.OperatorCodes(op.OpcodeIndex())
            kind = ops.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "CUSTOM")
            ins = [int(j) for j in op.InputsAsNumpy()]
            out = int(op.OutputsAsNumpy()[0])
            if kind in ("DEQUANTIZE", "DENSIFY") and ins[0] in self.const:  # weights: fold now
                self.const[out] = self.dense_const(ins[0]).astype(np.float32)
                continue
            handler = getattr(self, "op_" + kind.lower(), None)
            if handler is None:
                raise AucuesError(f"TFLite op {kind} is not supported by aucues' converter")
            handler(op, ins, out)

    def op_conv_2d(self, op, ins, out, depthwise: bool = False):
        import tflite

        opt = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
        w = self.dense_const(ins[1]).astype(np.float32)
        # TFLite weights: conv OHWI, depthwise 1HW(C*mult); ONNX wants OIHW, depthwise (C*mult)1HW.
        w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)
        x_shape = self.shape(ins[0])
        k_hw, s_hw = w.shape[2:], (opt.StrideH(), opt.StrideW())
        d_hw = (opt.DilationHFactor(), opt.DilationWFactor())
        pads = _same_pads(x_shape[1:3], k_hw, s_hw, d_hw) if opt.Padding() == 0 else [0, 0, 0, 0]
        inputs = [self.name[ins[0]], self.init(w)]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.init(self.dense_const(ins[2]).astype(np.float32), "b"))
        attrs = dict(kernel_shape=list(k_hw), strides=list(s_hw), dilations=list(d_hw), pads=pads)
        if depthwise:
            attrs["group"] = x_shape[3]
        y = self.node("Conv", inputs, "conv", **attrs)
        self.set(out, self.act(y, opt.FusedActivationFunction()), True)

    def op_depthwise_conv_2d(self, op, ins, out):
        self.op_conv_2d(op, ins, out, depthwise=True)

    def op_max_pool_2d(self, op, ins, out):
        import tflite

        opt = _options(op, tflite.Pool2DOptions)
        k, s = (opt.FilterHeight(), opt.FilterWidth()), (opt.StrideH(), opt.StrideW())
        pads = _same_pads(self.shape(ins[0])[1:3], k, s) if opt.Padding() == 0 else [0, 0, 0, 0]
        y = self.node("MaxPool", [self.name[ins[0]]], "pool", kernel_shape=list(k), strides=list(s), pads=pads)
        self.set(out, self.act(y, opt.FusedActivationFunction()), True)

    def op_add(self, op, ins, out):
        import tflite

        opt = _options(op, tflite.AddOptions)
        a, b = (self.name[j] if j in self.name else self.init(self.dense_const(j).astype(np.float32)) for j in ins)
        if self.nchw.get(ins[0]) != self.nchw.get(ins[1]) and all(j in self.name for j in ins):
            a, b = self.as_nhwc(ins[0]), self.as_nhwc(ins[1])
            self.set(out, self.act(self.node("Add", [a, b], "add"), opt.FusedActivationFunction()), False)
            return
        y = self.node("Add", [a, b], "add")
        self.set(out, self.act(y, opt.FusedActivationFunction()), self.nchw.get(ins[0], self.nchw.get(ins[1])))

    def op_relu(self, op, ins, out):
        self.set(out, self.node("Relu", [self.name[ins[0]]], "relu"), self.nchw[ins[0]])

    def op_prelu(self, op, ins, out):
        alpha = self.dense_const(ins[1]).astype(np.float32)
        if self.nchw[ins[0]]:  # slope per channel: (1,1,C) -> (C,1,1)
            alpha = alpha.reshape(-1)[:, None, None] if alpha.size > 1 else alpha.reshape(1)
        # PRelu written as relu(x) + alpha * min(x, 0): ONNX Runtime's PRelu kernel with a per-channel
        # slope took 70% of the mesh's time and broke its blocked (NCHWc) layout; this form keeps it.
        x = self.name[ins[0]]
        neg = self.node("Min", [x, self.init(np.zeros(1, np.float32), "zero")], "neg")
        scaled = self.node("Mul", [neg, self.init(alpha, "alpha")], "scaled")
        y = self.node("Add", [self.node("Relu", [x], "relu"), scaled], "prelu")
        self.set(out, y, self.nchw[ins[0]])

    def op_pad(self, op, ins, out):
        p = self.dense_const(ins[1]).astype(np.int64)  # (rank, 2) begin/end per NHWC dim
        if self.nchw[ins[0]]:
            p = p[list(_NCHW)]
        pads = np.concatenate([p[:, 0], p[:, 1]])
        y = self.node("Pad", [self.name[ins[0]], self.init(pads, "pads")], "pad", mode="constant")
        self.set(out, y, self.nchw[ins[0]])

    def op_reshape(self, op, ins, out):
        shape = np.array((-1,) + self.shape(out)[1:], np.int64)  # keep the batch dimension free
        y = self.node("Reshape", [self.as_nhwc(ins[0]), self.init(shape, "shape")], "reshape")
        self.set(out, y, False)

    def op_concatenation(self, op, ins, out):
        import tflite

        opt = _options(op, tflite.ConcatenationOptions)
        rank = len(self.shape(out))
        axis = opt.Axis() % rank
        nchw = all(self.nchw[j] for j in ins) and rank == 4
        names = [self.name[j] if nchw else self.as_nhwc(j) for j in ins]
        y = self.node("Concat", names, "concat", axis=_NCHW.index(axis) if nchw else axis)
        self.set(out, self.act(y, opt.FusedActivationFunction()), nchw)

    def op_resize_bilinear(self, op, ins, out):
        import tflite

        opt = _options(op, tflite.ResizeBilinearOptions)
        mode = "align_corners" if opt.AlignCorners() else ("half_pixel" if opt.HalfPixelCenters() else "asymmetric")
        h, w = self.shape(out)[1:3]
        n = self.node("Shape", [self.name[ins[0]]], "shape", start=0, end=2)
        sizes = self.node("Concat", [n, self.init(np.array([h, w], np.int64), "hw")], "sizes", axis=0)
        y = self.node("Resize", [self.name[ins[0]], "", "", sizes], "resize", mode="linear",
                      coordinate_transformation_mode=mode)
        self.set(out, y, True)

    def op_depth_to_space(self, op, ins, out):
        import tflite

        opt = _options(op, tflite.DepthToSpaceOptions)
        # ONNX's DCR order is TensorFlow's depth_to_space order.
        y = self.node("DepthToSpace", [self.name[ins[0]]], "d2s", blocksize=opt.BlockSize(), mode="DCR")
        self.set(out, y, True)


def tflite_to_onnx(tflite_bytes: bytes, producer: str = "aucues"):
    """An onnx.ModelProto equivalent to the TFLite model (first subgraph), batch dimension dynamic."""
    import onnx
    import tflite
    from onnx import TensorProto, helper

    try:
        model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
        sub = model.Subgraphs(0)
    except Exception as e:
        raise AucuesError(f"not a readable TFLite model ({e})") from None
    g = _Graph(model, sub)
    inputs, outputs = [], []
    for k in range(sub.InputsLength()):
        i = sub.Inputs(k)
        t = sub.Tensors(i)
        name = t.Name().decode()
        shape = ["N"] + list(g.shape(i)[1:])
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        if len(shape) == 4:
            g.set(i, g.node("Transpose", [name], "nchw", perm=list(_NCHW)), True)
        else:
            g.set(i, name, False)
    g.run()
    for k in range(sub.OutputsLength()):
        i = sub.Outputs(k)
        name = sub.Tensors(i).Name().decode()
        g.nodes.append(helper.make_node("Identity", [g.as_nhwc(i)], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"] + list(g.shape(i)[1:])))
    graph = helper.make_graph(g.nodes, "tflite", inputs, outputs, g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer)
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m
