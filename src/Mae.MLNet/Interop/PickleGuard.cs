using System.IO.Compression;
using System.Numerics;
using System.Text;

namespace Mae.MLNet.Interop;

/// <summary>
/// Checks a <c>torch.save</c> pickle BEFORE it is unpickled, in the spirit of <c>torch.load(weights_only=True)</c>:
/// walks every opcode with a symbolic stack (nothing is constructed or called), refuses any global outside a small
/// allow-list (tensor rebuild functions, storage types, OrderedDict, argparse.Namespace), and checks every tensor
/// against the bytes the archive really holds, so a hostile or corrupt file can neither run code nor make the loader
/// allocate more than the file contains.
/// </summary>
internal static class PickleGuard
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

    static readonly Dictionary<string, int> StorageElementSize = new()
    {
        ["FloatStorage"] = 4, ["DoubleStorage"] = 8, ["HalfStorage"] = 2, ["BFloat16Storage"] = 2, ["LongStorage"] = 8,
        ["IntStorage"] = 4, ["ShortStorage"] = 2, ["CharStorage"] = 1, ["ByteStorage"] = 1, ["BoolStorage"] = 1,
    };

    sealed record Global(string Module, string Name) { public override string ToString() => $"{Module}.{Name}"; }
    sealed record Tuple(object?[] Items);
    sealed record Storage(string Key, string Type, long Numel);
    sealed record Opaque(string What);
    sealed class Mark { public static readonly Mark Instance = new(); }

    public sealed record Report(int Tensors, long TensorBytes);

    /// <summary>Validates <paramref name="pickle"/> (the bytes of data.pkl) against <paramref name="archive"/>.</summary>
    public static Report Check(byte[] pickle, ZipArchive archive, string prefix, string file)
    {
        var entries = archive.Entries.ToDictionary(e => e.FullName, StringComparer.Ordinal);
        var stack = new List<object?>();
        var memo = new Dictionary<long, object?>();
        int pos = 0, tensors = 0;
        long tensorBytes = 0;

        Exception Bad(string why) => new MaeCheckpointException($"'{file}' is not a valid PyTorch weights file: {why} (pickle offset {pos}).");
        object? Pop()
        {
            if (stack.Count == 0) throw Bad("the pickle stack underflows");
            var v = stack[^1]; stack.RemoveAt(stack.Count - 1); return v;
        }
        object? Top() => stack.Count == 0 ? throw Bad("the pickle stack is empty") : stack[^1];
        List<object?> PopToMark()
        {
            int m = stack.FindLastIndex(x => x is Mark);
            if (m < 0) throw Bad("a MARK is missing");
            var items = stack.GetRange(m + 1, stack.Count - m - 1);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }
        ReadOnlySpan<byte> Take(long n)
        {
            if (n < 0 || pos + n > pickle.Length) throw Bad("the pickle ends in the middle of an opcode (truncated file?)");
            var s = pickle.AsSpan(pos, (int)n); pos += (int)n; return s;
        }
        string Line()
        {
            int end = Array.IndexOf(pickle, (byte)'\n', pos);
            if (end < 0) throw Bad("the pickle ends in the middle of a text opcode");
            var s = Encoding.UTF8.GetString(pickle, pos, end - pos); pos = end + 1; return s;
        }
        uint U32() => BitConverter.ToUInt32(Take(4));
        long U64()
        {
            ulong v = BitConverter.ToUInt64(Take(8));
            if (v > int.MaxValue) throw Bad("a length field is larger than the file");
            return (long)v;
        }
        void PushGlobal(string module, string name)
        {
            var g = new Global(module, name);
            if (!AllowedGlobals.Contains(g.ToString()))
                throw new MaeCheckpointException(
                    $"Refusing to load '{file}': its pickle asks for the global '{g}', which is not a tensor, a storage or a " +
                    "plain container. Mae.MLNet loads weights only (like torch.load(weights_only=True)); files that would " +
                    "construct or call arbitrary Python objects are refused.");
            stack.Add(g);
        }

        while (true)
        {
            if (pos >= pickle.Length) throw Bad("the pickle has no STOP opcode (truncated file?)");
            byte op = pickle[pos++];
            switch (op)
            {
                case 0x80: Take(1); break;                                  // PROTO
                case 0x95: Take(8); break;                                  // FRAME
                case (byte)'.':                                             // STOP
                    if (stack.Count != 1) throw Bad($"STOP with {stack.Count} items on the stack");
                    return new Report(tensors, tensorBytes);
                case (byte)'(': stack.Add(Mark.Instance); break;
                case (byte)'0': Pop(); break;
                case (byte)'1': PopToMark(); break;
                case (byte)'2': stack.Add(Top()); break;
                case (byte)'F': stack.Add(double.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture)); break;
                case (byte)'I':
                {
                    var s = Line();
                    stack.Add(s == "01" ? true : s == "00" ? false : long.TryParse(s, out var v) ? v : new Opaque("int"));
                    break;
                }
                case (byte)'J': stack.Add((long)BitConverter.ToInt32(Take(4))); break;
                case (byte)'K': stack.Add((long)Take(1)[0]); break;
                case (byte)'M': stack.Add((long)BitConverter.ToUInt16(Take(2))); break;
                case (byte)'L': Line(); stack.Add(new Opaque("long")); break;
                case 0x8a:                                                  // LONG1
                {
                    int n = Take(1)[0];
                    var bytes = Take(n);
                    var big = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
                    stack.Add(big >= long.MinValue && big <= long.MaxValue ? (long)big : new Opaque("long"));
                    break;
                }
                case 0x8b: Take(U32()); stack.Add(new Opaque("long")); break; // LONG4
                case (byte)'S': case (byte)'V': stack.Add(Line()); break;
                case (byte)'T': case (byte)'B': Take(U32()); stack.Add(new Opaque("bytes")); break;
                case (byte)'U': case (byte)'C': Take(Take(1)[0]); stack.Add(new Opaque("bytes")); break;
                case (byte)'X': stack.Add(Encoding.UTF8.GetString(Take(U32()))); break;
                case 0x8c: stack.Add(Encoding.UTF8.GetString(Take(Take(1)[0]))); break;
                case 0x8d: stack.Add(Encoding.UTF8.GetString(Take(U64()))); break;
                case 0x8e: case 0x96: Take(U64()); stack.Add(new Opaque("bytes")); break;
                case (byte)'N': stack.Add(null); break;
                case 0x88: stack.Add(true); break;
                case 0x89: stack.Add(false); break;
                case (byte)'G': Take(8); stack.Add(new Opaque("float")); break;
                case (byte)']': stack.Add(new Opaque("list")); break;
                case (byte)'a': Pop(); _ = Top(); break;
                case (byte)'e': PopToMark(); _ = Top(); break;
                case (byte)'l': PopToMark(); stack.Add(new Opaque("list")); break;
                case (byte)')': stack.Add(new Tuple(Array.Empty<object?>())); break;
                case (byte)'t': stack.Add(new Tuple(PopToMark().ToArray())); break;
                case 0x85: stack.Add(new Tuple(new[] { Pop() })); break;
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new Tuple(new[] { a, b })); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new Tuple(new[] { a, b, c })); break; }
                case (byte)'}': stack.Add(new Opaque("dict")); break;
                case (byte)'d': PopToMark(); stack.Add(new Opaque("dict")); break;
                case (byte)'s': Pop(); Pop(); _ = Top(); break;
                case (byte)'u': PopToMark(); _ = Top(); break;
                case 0x8f: stack.Add(new Opaque("set")); break;
                case 0x90: PopToMark(); _ = Top(); break;
                case 0x91: PopToMark(); stack.Add(new Opaque("frozenset")); break;
                case (byte)'c': { var module = Line(); var name = Line(); PushGlobal(module, name); break; }
                case 0x93:                                                  // STACK_GLOBAL
                {
                    var name = Pop() as string; var module = Pop() as string;
                    if (name is null || module is null) throw Bad("STACK_GLOBAL without module and name strings");
                    PushGlobal(module, name);
                    break;
                }
                case (byte)'i':                                             // INST
                {
                    var module = Line(); var name = Line(); PushGlobal(module, name); Pop(); PopToMark();
                    stack.Add(new Opaque($"{module}.{name}"));
                    break;
                }
                case (byte)'o':                                             // OBJ
                {
                    var items = PopToMark();
                    if (items.Count == 0 || items[0] is not Global) throw Bad("OBJ without a class");
                    stack.Add(new Opaque(items[0]!.ToString()!));
                    break;
                }
                case (byte)'R':                                             // REDUCE
                {
                    var args = Pop(); var callable = Pop();
                    if (callable is not Global g) throw Bad("REDUCE on something that is not an allowed global");
                    if (g.Name is "_rebuild_tensor_v2" or "_rebuild_tensor")
                    {
                        tensorBytes += CheckTensor(args as Tuple, entries, prefix, file, Bad);
                        tensors++;
                    }
                    stack.Add(new Opaque(g.ToString()));
                    break;
                }
                case 0x81: { Pop(); var cls = Pop(); stack.Add(new Opaque(cls?.ToString() ?? "object")); break; } // NEWOBJ
                case 0x92: { Pop(); Pop(); var cls = Pop(); stack.Add(new Opaque(cls?.ToString() ?? "object")); break; }
                case (byte)'b': Pop(); _ = Top(); break;                    // BUILD
                case (byte)'p': memo[long.Parse(Line())] = Top(); break;
                case (byte)'q': memo[Take(1)[0]] = Top(); break;
                case (byte)'r': memo[U32()] = Top(); break;
                case 0x94: memo[memo.Count] = Top(); break;
                case (byte)'g': stack.Add(Memo(memo, long.Parse(Line()), Bad)); break;
                case (byte)'h': stack.Add(Memo(memo, Take(1)[0], Bad)); break;
                case (byte)'j': stack.Add(Memo(memo, U32(), Bad)); break;
                case (byte)'P': Line(); throw Bad("text persistent ids are not used by torch.save");
                case (byte)'Q': stack.Add(CheckStorage(Pop() as Tuple, Bad)); break;
                default:
                    throw new MaeCheckpointException(
                        $"Refusing to load '{file}': pickle opcode 0x{op:x2} at offset {pos - 1} is not used by torch.save weight files.");
            }
        }
    }

    static object? Memo(Dictionary<long, object?> memo, long key, Func<string, Exception> bad)
        => memo.TryGetValue(key, out var v) ? v : throw bad($"memo slot {key} is read before it is written");

    static Storage CheckStorage(Tuple? pid, Func<string, Exception> bad)
    {
        // torch.save: ('storage', storage_type, key, location, numel)
        if (pid is null || pid.Items.Length != 5 || pid.Items[0] as string != "storage")
            throw bad("a persistent id is not a ('storage', type, key, location, numel) tuple");
        if (pid.Items[1] is not Global { Module: "torch" } type || !StorageElementSize.ContainsKey(type.Name))
            throw bad($"unknown storage type '{pid.Items[1]}'");
        if (pid.Items[2] is not string key || pid.Items[4] is not long numel || numel < 0)
            throw bad("a storage has no key or a negative/huge element count");
        return new Storage(key, type.Name, numel);
    }

    static long CheckTensor(Tuple? args, Dictionary<string, ZipArchiveEntry> entries, string prefix, string file,
                            Func<string, Exception> bad)
    {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args is null || args.Items.Length < 4 || args.Items[0] is not Storage storage)
            throw bad("a tensor is rebuilt without a storage");
        if (args.Items[1] is not long offset || args.Items[2] is not Tuple size || args.Items[3] is not Tuple stride)
            throw bad("a tensor has a malformed offset, size or stride");
        if (size.Items.Length != stride.Items.Length || size.Items.Any(s => s is not long v || v < 0) || stride.Items.Any(s => s is not long))
            throw bad("a tensor has a malformed size or stride");
        long numel = 1;
        foreach (long s in size.Items.Cast<long>())
            numel = s == 0 ? 0 : numel > long.MaxValue / Math.Max(s, 1) ? throw bad("a tensor's element count overflows") : numel * s;
        if (numel > storage.Numel)
            throw bad($"a tensor of {numel} elements claims storage '{storage.Key}' of only {storage.Numel} elements");
        if (offset != 0 || !IsContiguous(size.Items.Cast<long>().ToArray(), stride.Items.Cast<long>().ToArray()))
            throw new MaeCheckpointException(
                $"'{file}' stores a tensor as a strided view into shared storage '{storage.Key}' (offset {offset}); " +
                "only contiguous tensors are supported. Re-save the state dict with tensors cloned: " +
                "torch.save({k: v.contiguous().clone() for k, v in sd.items()}, path).");
        int elementSize = StorageElementSize[storage.Type];
        if (!entries.TryGetValue($"{prefix}data/{storage.Key}", out var entry))
            throw bad($"the archive has no entry 'data/{storage.Key}' for a tensor");
        long claimed = storage.Numel * elementSize;
        if (entry.Length != claimed)
            throw new MaeCheckpointException(
                $"'{file}' is corrupt: storage '{storage.Key}' ({storage.Type}) claims {storage.Numel} elements = {claimed} bytes " +
                $"but the archive entry holds {entry.Length} bytes.");
        if (entry.CompressedLength * 1024 < entry.Length && entry.Length > (1 << 20))
            throw new MaeCheckpointException($"'{file}': archive entry '{entry.FullName}' is compressed more than 1024:1; refusing a possible zip bomb.");
        return claimed;
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
