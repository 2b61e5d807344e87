using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Mae.MLNet.Interop.Onnx;

/// <summary>
/// A small helper over the generated ONNX protobuf classes: adds initializers and nodes with unique names, graph
/// inputs and outputs with static or symbolic dimensions, and wraps the graph in a <see cref="ModelProto"/> with
/// one opset import for the default domain.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    readonly HashSet<string> names = new(StringComparer.Ordinal);
    int nodeCount;

    public GraphProto Graph { get; }

    /// <summary>Bytes of weight data added so far (a protobuf message cannot exceed 2 GiB).</summary>
    public long InitializerBytes { get; private set; }

    public OnnxGraphBuilder(string graphName) => Graph = new GraphProto { Name = graphName };

    /// <summary>Reserves <paramref name="hint"/>, or <c>hint_1</c>, <c>hint_2</c>, … when it is taken.</summary>
    public string UniqueName(string hint)
    {
        if (names.Add(hint)) return hint;
        for (int i = 1; ; i++)
        {
            string candidate = $"{hint}_{i}";
            if (names.Add(candidate)) return candidate;
        }
    }

    /// <summary>Reserves an exact name (graph inputs and outputs); throws when it is already used.</summary>
    public string ExactName(string name)
    {
        if (!names.Add(name))
            throw new ArgumentException($"The ONNX value name '{name}' is used twice; input and output names must be distinct.");
        return name;
    }

    public string AddInitializer(string hint, ReadOnlySpan<float> data, params long[] dims)
    {
        CheckCount(data.Length, dims, hint);
        return AddTensor(hint, TensorProto.Types.DataType.Float, LittleEndianBytes(MemoryMarshal.AsBytes(data), sizeof(float)), dims);
    }

    /// <summary>Adds a float tensor from its raw native-order bytes; the array is taken over, not copied.</summary>
    public string AddFloatInitializer(string hint, byte[] bytes, params long[] dims)
    {
        CheckCount(bytes.Length / sizeof(float), dims, hint);
        if (!BitConverter.IsLittleEndian)
            for (int i = 0; i < bytes.Length; i += sizeof(float)) Array.Reverse(bytes, i, sizeof(float));
        return AddTensor(hint, TensorProto.Types.DataType.Float, UnsafeByteOperations.UnsafeWrap(bytes), dims);
    }

    public string AddInt64Initializer(string hint, ReadOnlySpan<long> data, params long[] dims)
    {
        CheckCount(data.Length, dims, hint);
        return AddTensor(hint, TensorProto.Types.DataType.Int64, LittleEndianBytes(MemoryMarshal.AsBytes(data), sizeof(long)), dims);
    }

    /// <summary>The one place an initializer joins the graph (and the byte count the size limit reads).</summary>
    string AddTensor(string hint, TensorProto.Types.DataType type, ByteString raw, long[] dims)
    {
        var tensor = new TensorProto { Name = UniqueName(hint), DataType = (int)type, RawData = raw };
        tensor.Dims.AddRange(dims);
        InitializerBytes += raw.Length;
        Graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>A 0-d float constant.</summary>
    public string Scalar(string hint, float value) => AddInitializer(hint, new[] { value });

    /// <summary>A 1-d int64 constant (shapes, axes, indices).</summary>
    public string Int64s(string hint, params long[] values) => AddInt64Initializer(hint, values, values.Length);

    /// <summary>Adds a node with one output and returns the output's name (<paramref name="output"/> is used
    /// exactly when given, else a unique name derived from the op type).</summary>
    public string Node(string opType, string[] inputs, string? output = null, params AttributeProto[] attributes)
        => NodeMulti(opType, inputs, new[] { output ?? UniqueName(opType.ToLowerInvariant()) }, attributes)[0];

    public string[] NodeMulti(string opType, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = $"{opType}_{nodeCount++}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return outputs;
    }

    public static AttributeProto Attr(string name, long value)
        => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Attr(string name, float value)
        => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Attr(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    /// <summary>Declares a float graph input; a dimension is either a <see cref="long"/> size or a
    /// <see cref="string"/> symbolic name (dim_param).</summary>
    public void AddInput(string name, params object[] dims) => Graph.Input.Add(FloatValueInfo(name, dims));

    public void AddOutput(string name, params object[] dims) => Graph.Output.Add(FloatValueInfo(name, dims));

    public ModelProto ToModel(long irVersion, long opset, string producer, string producerVersion, string docString)
    {
        var model = new ModelProto
        {
            IrVersion = irVersion,
            ProducerName = producer,
            ProducerVersion = producerVersion,
            DocString = docString,
            Graph = Graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model;
    }

    static ValueInfoProto FloatValueInfo(string name, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d switch
            {
                long v => new TensorShapeProto.Types.Dimension { DimValue = v },
                int v => new TensorShapeProto.Types.Dimension { DimValue = v },
                string p => new TensorShapeProto.Types.Dimension { DimParam = p },
                _ => throw new ArgumentException($"A dimension must be a long or a string; got {d?.GetType().Name ?? "null"}."),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto
            {
                TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape },
            },
        };
    }

    static void CheckCount(int count, long[] dims, string name)
    {
        long expected = 1;
        foreach (var d in dims) expected *= d;
        if (expected != count)
            throw new ArgumentException($"Initializer '{name}': {count} values for shape [{string.Join(", ", dims)}] (expected {expected}).");
    }

    /// <summary>ONNX raw_data is little-endian; swap element bytes on a big-endian host.</summary>
    static ByteString LittleEndianBytes(ReadOnlySpan<byte> bytes, int elementSize)
    {
        if (BitConverter.IsLittleEndian) return ByteString.CopyFrom(bytes);
        var copy = bytes.ToArray();
        for (int i = 0; i < copy.Length; i += elementSize) Array.Reverse(copy, i, elementSize);
        return ByteString.CopyFrom(copy);
    }
}
