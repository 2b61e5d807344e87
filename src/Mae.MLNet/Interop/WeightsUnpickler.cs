using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>
/// Reads a <c>torch.save</c> pickle (data.pkl) the way <c>torch.load(weights_only=True)</c> does: every opcode is
/// interpreted, but the only globals that may be named are tensor rebuild functions, storage types, OrderedDict,
/// argparse.Namespace and <c>_codecs.encode</c>, and nothing is ever called. Tensors come back as
/// <see cref="MaeUnloadedTensor"/> descriptions, each checked against the archive entry that holds its values, so
/// the caller loads only the tensors it uses, from exactly the entries checked here. The walk is bounded by
/// <see cref="MaeLoadLimits.MaxPickleValues"/> (values pushed, memoized or added to containers), so its memory
/// follows the file, not what the file claims.
/// </summary>
/// <remarks>Values: <c>null</c>, <see cref="bool"/>, <see cref="long"/> (or <see cref="BigInteger"/>), <see cref="double"/>,
/// <see cref="string"/>, <c>byte[]</c>, tuples as <c>object?[]</c>, lists and sets as <c>List&lt;object?&gt;</c>,
/// dicts (and OrderedDicts) as <c>Dictionary&lt;object, object?&gt;</c>, argparse.Namespace as <see cref="Namespace"/>.</remarks>
internal sealed class WeightsUnpickler
{
    static readonly HashSet<string> AllowedGlobals = new(StringComparer.Ordinal)
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        "argparse.Namespace", "_codecs.encode",
        "torch.FloatStorage", "torch.DoubleStorage", "torch.HalfStorage", "torch.BFloat16Storage",
        "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage", "torch.ByteStorage",
        "torch.BoolStorage",
    };

    static readonly Dictionary<string, (ScalarType Type, int Size)> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = (ScalarType.Float32, 4), ["DoubleStorage"] = (ScalarType.Float64, 8),
        ["HalfStorage"] = (ScalarType.Float16, 2), ["BFloat16Storage"] = (ScalarType.BFloat16, 2),
        ["LongStorage"] = (ScalarType.Int64, 8), ["IntStorage"] = (ScalarType.Int32, 4),
        ["ShortStorage"] = (ScalarType.Int16, 2), ["CharStorage"] = (ScalarType.Int8, 1),
        ["ByteStorage"] = (ScalarType.Byte, 1), ["BoolStorage"] = (ScalarType.Bool, 1),
    };

    /// <summary>An argparse.Namespace: its attributes by name.</summary>
    public sealed class Namespace : Dictionary<object, object?> { }

    sealed record Global(string Module, string Name) { public override string ToString() => $"{Module}.{Name}"; }
    sealed record Storage(string Key, ScalarType Type, int ElementSize, long Numel);

    readonly byte[] pickle;
    readonly TorchArchive archive;
    readonly string file, entry;
    readonly int maxValues;
    readonly List<object?> stack = new();
    readonly List<int> marks = new();
    readonly Dictionary<long, object?> memo = new();
    int pos, values;

    WeightsUnpickler(byte[] pickle, TorchArchive archive, MaeLoadLimits limits)
    {
        this.pickle = pickle;
        this.archive = archive;
        file = archive.File;
        entry = archive.PickleName;
        maxValues = limits.MaxPickleValues;
    }

    /// <summary>The object the pickle describes (usually a dict), with tensors as <see cref="MaeUnloadedTensor"/>.</summary>
    public static object? Load(byte[] pickle, TorchArchive archive, MaeLoadLimits limits)
        => new WeightsUnpickler(pickle, archive, limits).Run();

    MaeModelFileException Bad(string why)
        => new($"'{file}' is not a valid PyTorch weights file: {why} (entry '{entry}', pickle offset {pos}).", file, entry);

    MaeModelFileException Refuse(string why)
        => new($"Refusing to load '{file}': {why} (entry '{entry}', pickle offset {pos}).", file, entry);

    void Count(int n = 1)
    {
        values += n;
        if (values > maxValues)
            throw Refuse($"its pickle builds more than {maxValues} values (MaeLoadLimits.MaxPickleValues); a state dict needs " +
                         "a few dozen per tensor, so this is not a plain weights file (raise the limit if it really is)");
    }

    void Push(object? v) { Count(); stack.Add(v); }

    object? Pop()
    {
        if (stack.Count == 0 || (marks.Count > 0 && marks[^1] == stack.Count)) throw Bad("the pickle stack underflows");
        var v = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    object? Top()
    {
        if (stack.Count == 0 || (marks.Count > 0 && marks[^1] == stack.Count)) throw Bad("the pickle stack is empty");
        return stack[^1];
    }

    List<object?> PopToMark()
    {
        if (marks.Count == 0) throw Bad("a MARK is missing");
        int m = marks[^1];
        marks.RemoveAt(marks.Count - 1);
        var items = stack.GetRange(m, stack.Count - m);
        stack.RemoveRange(m, stack.Count - m);
        return items;
    }

    ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || n > pickle.Length - pos) throw Bad("the pickle ends in the middle of an opcode (truncated file?)");
        var s = pickle.AsSpan(pos, (int)n);
        pos += (int)n;
        return s;
    }

    string Line()
    {
        int end = Array.IndexOf(pickle, (byte)'\n', pos);
        if (end < 0) throw Bad("the pickle ends in the middle of a text opcode");
        var s = Encoding.UTF8.GetString(pickle, pos, end - pos);
        pos = end + 1;
        return s;
    }

    long TextInteger(string what)
    {
        var s = Line();
        return long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
            ? v : throw Bad($"{what} '{Shorten(s)}' is not an integer");
    }

    static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";

    uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    long Length64()
    {
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        return v > (ulong)(pickle.Length - pos) ? throw Bad("a length field is larger than the pickle") : (long)v;
    }

    string Utf8(ReadOnlySpan<byte> bytes)
    {
        try { return new UTF8Encoding(false, true).GetString(bytes); }
        catch (DecoderFallbackException) { throw Bad("a string is not valid UTF-8"); }
    }

    object? Run()
    {
        while (true)
        {
            if (pos >= pickle.Length) throw Bad("the pickle has no STOP opcode (truncated file?)");
            byte op = pickle[pos++];
            switch (op)
            {
                case 0x80: Take(1); break;                                              // PROTO
                case 0x95: Take(8); break;                                              // FRAME
                case (byte)'.':                                                         // STOP
                    if (stack.Count != 1 || marks.Count != 0) throw Bad($"STOP with {stack.Count} items on the stack");
                    return stack[0];
                case (byte)'(': Count(); marks.Add(stack.Count); break;                // MARK
                case (byte)'0': Pop(); break;                                           // POP
                case (byte)'1': PopToMark(); break;                                     // POP_MARK
                case (byte)'2': Push(Top()); break;                                     // DUP
                case (byte)'F':                                                         // FLOAT
                {
                    var s = Line();
                    Push(double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : throw Bad($"FLOAT '{Shorten(s)}' is not a number"));
                    break;
                }
                case (byte)'I':                                                         // INT (and the protocol-0 bools)
                {
                    var s = Line();
                    Push(s == "01" ? true : s == "00" ? false
                        : long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v
                        : throw Bad($"INT '{Shorten(s)}' is not an integer"));
                    break;
                }
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                case (byte)'K': Push((long)Take(1)[0]); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case (byte)'L':                                                         // LONG (text, 'L' suffix)
                {
                    var s = Line().TrimEnd('L');
                    if (s.Length > 64 || !BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big))
                        throw Bad($"LONG '{Shorten(s)}' is not an integer of at most 64 digits");
                    Push(Narrow(big));
                    break;
                }
                case 0x8a: Push(Narrow(LittleEndianInteger(Take(Take(1)[0])))); break;   // LONG1
                case 0x8b:                                                              // LONG4
                {
                    uint n = U32();
                    if (n > 64) throw Bad($"LONG4 of {n} bytes; weights files hold no integers that large");
                    Push(Narrow(LittleEndianInteger(Take(n))));
                    break;
                }
                case (byte)'S': Push(Unquote(Line())); break;                           // STRING (protocol 0)
                case (byte)'V': Push(Line()); break;                                    // UNICODE (protocol 0)
                case (byte)'T': Push(Encoding.Latin1.GetString(Take(U32()))); break;    // BINSTRING
                case (byte)'U': Push(Encoding.Latin1.GetString(Take(Take(1)[0]))); break; // SHORT_BINSTRING
                case (byte)'X': Push(Utf8(Take(U32()))); break;                         // BINUNICODE
                case 0x8c: Push(Utf8(Take(Take(1)[0]))); break;                         // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(Take(Length64()))); break;                         // BINUNICODE8
                case (byte)'B': Push(Take(U32()).ToArray()); break;                     // BINBYTES
                case (byte)'C': Push(Take(Take(1)[0]).ToArray()); break;                // SHORT_BINBYTES
                case 0x8e: case 0x96: Push(Take(Length64()).ToArray()); break;          // BINBYTES8, BYTEARRAY8
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case (byte)']': Push(new List<object?>()); break;                      // EMPTY_LIST
                case (byte)'a': { var v = Pop(); AsList(Top()).Add(v); Count(); break; } // APPEND
                case (byte)'e': { var items = PopToMark(); AsList(Top()).AddRange(items); Count(items.Count); break; } // APPENDS
                case (byte)'l': { var items = PopToMark(); Push(items); break; }       // LIST
                case (byte)')': Push(Array.Empty<object?>()); break;                    // EMPTY_TUPLE (shared, no allocation)
                case (byte)'t': Push(PopToMark().ToArray()); break;                     // TUPLE
                case 0x85: Push(new[] { Pop() }); break;                                // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
                case (byte)'}': Push(new Dictionary<object, object?>()); break;        // EMPTY_DICT
                case (byte)'d': { var items = PopToMark(); var d = new Dictionary<object, object?>(); SetItems(d, items); Push(d); break; }
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(AsDict(Top()), new List<object?> { k, v }); break; }
                case (byte)'u': { var items = PopToMark(); SetItems(AsDict(Top()), items); break; }
                case 0x8f: Push(new List<object?>()); break;                            // EMPTY_SET
                case 0x90: { var items = PopToMark(); AsList(Top()).AddRange(items); Count(items.Count); break; } // ADDITEMS
                case 0x91: Push(PopToMark()); break;                                    // FROZENSET
                case (byte)'c': { var module = Line(); var name = Line(); Push(Resolve(module, name)); break; } // GLOBAL
                case 0x93:                                                              // STACK_GLOBAL
                {
                    var name = Pop() as string; var module = Pop() as string;
                    if (name is null || module is null) throw Bad("STACK_GLOBAL without module and name strings");
                    Push(Resolve(module, name));
                    break;
                }
                case (byte)'i':                                                         // INST
                {
                    var g = Resolve(Line(), Line());
                    Push(Construct(g, PopToMark().ToArray()));
                    break;
                }
                case (byte)'o':                                                         // OBJ
                {
                    var items = PopToMark();
                    if (items.Count == 0 || items[0] is not Global g) throw Bad("OBJ without a class");
                    Push(Construct(g, items.Skip(1).ToArray()));
                    break;
                }
                case 0x81: { var args = Pop(); Push(Construct(Pop(), args)); break; }  // NEWOBJ
                case 0x92: { Pop(); var args = Pop(); Push(Construct(Pop(), args)); break; } // NEWOBJ_EX (kwargs ignored)
                case (byte)'R': { var args = Pop(); Push(Reduce(Pop(), args)); break; } // REDUCE
                case (byte)'b': { var state = Pop(); Build(Top(), state); break; }      // BUILD
                case (byte)'p': Memoize(TextInteger("PUT index")); break;
                case (byte)'q': Memoize(Take(1)[0]); break;
                case (byte)'r': Memoize(U32()); break;
                case 0x94: Memoize(memo.Count); break;                                  // MEMOIZE
                case (byte)'g': Push(Recall(TextInteger("GET index"))); break;
                case (byte)'h': Push(Recall(Take(1)[0])); break;
                case (byte)'j': Push(Recall(U32())); break;
                case (byte)'Q': Push(PersistentLoad(Pop() as object?[])); break;       // BINPERSID
                case (byte)'P': throw Bad("text persistent ids are not used by torch.save");
                default:
                    throw Refuse($"pickle opcode 0x{op:x2} at offset {pos - 1} is not used by torch.save weight files");
            }
        }
    }

    static BigInteger LittleEndianInteger(ReadOnlySpan<byte> bytes) => new(bytes, isUnsigned: false, isBigEndian: false);

    static object Narrow(BigInteger v) => v >= long.MinValue && v <= long.MaxValue ? (long)v : v;

    string Unquote(string s)
        => s.Length >= 2 && (s[0] == '\'' || s[0] == '"') && s[^1] == s[0] ? s[1..^1] : throw Bad($"STRING '{Shorten(s)}' is not quoted");

    List<object?> AsList(object? v) => v as List<object?> ?? throw Bad($"APPEND/ADDITEMS on a {Describe(v)}, not a list or set");

    Dictionary<object, object?> AsDict(object? v) => v as Dictionary<object, object?> ?? throw Bad($"SETITEM on a {Describe(v)}, not a dict");

    void SetItems(Dictionary<object, object?> d, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad("SETITEMS with an odd number of items");
        for (int i = 0; i < items.Count; i += 2)
        {
            var key = items[i] ?? throw Bad("a dict key is None");
            if (key is not (string or long or bool or double or BigInteger))
                throw Bad($"a dict key is a {Describe(key)}; weights files use string and integer keys");
            d[key] = items[i + 1];
        }
        Count(items.Count / 2);
    }

    void Memoize(long index)
    {
        if (index < 0) throw Bad($"memo index {index} is negative");
        Count();
        memo[index] = Top();
    }

    object? Recall(long index) => memo.TryGetValue(index, out var v) ? v : throw Bad($"memo slot {index} is read before it is written");

    static string Describe(object? v) => v switch
    {
        null => "None", Global g => $"global {g}", object?[] => "tuple", List<object?> => "list",
        Dictionary<object, object?> => "dict", MaeUnloadedTensor => "tensor", _ => v.GetType().Name,
    };

    Global Resolve(string module, string name)
    {
        var g = new Global(module, name);
        if (!AllowedGlobals.Contains(g.ToString()))
            throw new MaeModelFileException(
                $"Refusing to load '{file}': its pickle asks for the global '{g}', which is not a tensor, a storage or a " +
                "plain container. Mae.MLNet loads weights only (like torch.load(weights_only=True)); files that would " +
                $"construct or call arbitrary Python objects are refused (entry '{entry}', pickle offset {pos}).", file, entry);
        return g;
    }

    object Construct(object? cls, object? args)
    {
        if (cls is not Global g) throw Bad($"NEWOBJ/INST/OBJ on a {Describe(cls)}, not a class");
        if (args is not object?[]) throw Bad("NEWOBJ/INST/OBJ arguments are not a tuple");
        Count();
        return g.Name switch
        {
            "Namespace" => new Namespace(),
            "OrderedDict" => new Dictionary<object, object?>(),
            _ => throw Refuse($"the pickle constructs '{g}' as an object; only argparse.Namespace and OrderedDict may be constructed"),
        };
    }

    void Build(object? target, object? state)
    {
        // OrderedDict state (its __dict__, e.g. a state dict's _metadata) is an attribute, not an item: dropped.
        // A Namespace's state is its attributes.
        if (target is Namespace ns)
        {
            var attributes = state as Dictionary<object, object?>
                ?? (state is object?[] { Length: 2 } pair ? pair[0] as Dictionary<object, object?> : null)
                ?? throw Bad("BUILD of an argparse.Namespace without a dict of attributes");
            foreach (var (k, v) in attributes) ns[k] = v;
            Count(attributes.Count);
        }
        else if (target is not Dictionary<object, object?>)
            throw Bad($"BUILD on a {Describe(target)}; torch.save only sets the state of dicts and namespaces");
    }

    object? Reduce(object? callable, object? argsObject)
    {
        if (callable is not Global g) throw Bad($"REDUCE on a {Describe(callable)}, not an allowed function");
        var args = argsObject as object?[] ?? throw Bad("REDUCE arguments are not a tuple");
        Count();
        switch (g.ToString())
        {
            case "collections.OrderedDict":
            {
                var d = new Dictionary<object, object?>();
                if (args.Length == 1 && args[0] is List<object?> pairs)
                    SetItems(d, pairs.SelectMany(p => p is object?[] { Length: 2 } kv ? kv : throw Bad("OrderedDict items are not pairs")).ToList());
                else if (args.Length != 0) throw Bad("OrderedDict with unexpected arguments");
                return d;
            }
            case "torch._utils._rebuild_tensor_v2":
            case "torch._utils._rebuild_tensor":
                return RebuildTensor(args);
            case "torch._utils._rebuild_parameter":
                return args.Length >= 1 && args[0] is MaeUnloadedTensor t ? t : throw Bad("_rebuild_parameter without a tensor");
            case "_codecs.encode":
                return args.Length >= 1 && args[0] is string s ? Encoding.Latin1.GetBytes(s) : throw Bad("_codecs.encode without a string");
            default:
                throw Refuse($"the pickle calls '{g}', which torch.save never calls");
        }
    }

    Storage PersistentLoad(object?[]? pid)
    {
        // torch.save: ('storage', storage_type, key, location, numel)
        if (pid is null || pid.Length != 5 || pid[0] as string != "storage")
            throw Bad("a persistent id is not a ('storage', type, key, location, numel) tuple");
        if (pid[1] is not Global { Module: "torch" } type || !StorageTypes.TryGetValue(type.Name, out var dtype))
            throw Bad($"unknown storage type '{pid[1]}'");
        if (pid[2] is not string key || key.Length == 0 || pid[4] is not long numel || numel < 0 || numel > long.MaxValue / 8)
            throw Bad("a storage has no key or a negative/huge element count");
        long claimed = numel * dtype.Size;
        long length = archive.StorageLength(key, Bad);
        if (length != claimed)
            throw new MaeModelFileException(
                $"'{file}' is corrupt: storage '{key}' ({type.Name}) claims {numel} elements = {claimed} bytes " +
                $"but the archive entry holds {length} bytes.", file, archive.StorageEntryName(key));
        return new Storage(key, dtype.Type, dtype.Size, numel);
    }

    MaeUnloadedTensor RebuildTensor(object?[] args)
    {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.Length < 4 || args[0] is not Storage storage) throw Bad("a tensor is rebuilt without a storage");
        if (args[1] is not long offset || args[2] is not object?[] size || args[3] is not object?[] stride)
            throw Bad("a tensor has a malformed offset, size or stride");
        if (size.Length != stride.Length || size.Length > 32 || size.Any(s => s is not long v || v < 0) || stride.Any(s => s is not long))
            throw Bad("a tensor has a malformed size or stride");
        var shape = size.Cast<long>().ToArray();
        long numel = 1;
        foreach (long s in shape)
            numel = s == 0 ? 0 : numel > long.MaxValue / s ? throw Bad("a tensor's element count overflows") : numel * s;
        if (numel > storage.Numel)
            throw Bad($"a tensor of {numel} elements claims storage '{storage.Key}' of only {storage.Numel} elements");
        if (offset != 0 || !IsContiguous(shape, stride.Cast<long>().ToArray()))
            throw new MaeModelFileException(
                $"'{file}' stores a tensor as a strided view into shared storage '{storage.Key}' (offset {offset}); " +
                "only contiguous tensors are supported. Re-save the state dict with tensors cloned: " +
                "torch.save({k: v.contiguous().clone() for k, v in sd.items()}, path).", file, archive.StorageEntryName(storage.Key));
        return new MaeUnloadedTensor(storage.Key, storage.Type, shape, numel, storage.Numel);
    }

    static bool IsContiguous(long[] size, long[] stride)
    {
        long expected = 1;
        for (int d = size.Length - 1; d >= 0; d--)
        {
            if (size[d] != 1 && stride[d] != expected) return false;
            expected *= size[d];
        }
        return true;
    }
}
