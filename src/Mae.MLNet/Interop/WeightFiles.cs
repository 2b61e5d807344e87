using System.Buffers.Binary;
using System.Text.Json;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>Reads tensors from the files people download: zip-format <c>torch.save</c> pickles (.pth / .bin) and
/// safetensors. Each file is read through one view (<see cref="TorchArchive"/> + <see cref="WeightsUnpickler"/>, or the
/// safetensors header checked here): the bytes that are checked are the bytes that are loaded, and every size a file
/// states is held against <see cref="MaeLoadLimits"/> and against the file's real length before memory is committed.</summary>
internal static class WeightFiles
{
    public sealed record Contents(Dictionary<string, Tensor> Tensors, Dictionary<string, object?> Extras);

    public static Contents Read(string path, MaeLoadLimits limits)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        return path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            ? new Contents(ReadSafetensors(path, limits), new())
            : ReadTorchPickle(path, limits);
    }

    /// <summary>What a file holds without loading a tensor: parameter names → shapes (the file's own names), and a
    /// pickle's other top-level entries (<c>args</c>, <c>epoch</c>, ...). Bounded by the same checks as
    /// <see cref="Read"/> except the tensor-byte budget, which only loading spends.</summary>
    public static Description Describe(string path, MaeLoadLimits limits)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            using var stream = OpenFile(path);
            var (entries, _) = ReadSafetensorsHeader(stream, path, limits);
            return new Description(entries.ToDictionary(e => e.Name, e => e.Shape, StringComparer.Ordinal), new());
        }
        CheckZipSignature(path);
        using var archive = TorchArchive.Open(path, limits);
        var (stateDict, extras) = Split(WeightsUnpickler.Load(archive.ReadPickle(limits), archive, limits), path);
        return new Description(stateDict.ToDictionary(kv => kv.Key, kv => kv.Value.Shape.ToArray(), StringComparer.Ordinal), extras);
    }

    public sealed record Description(Dictionary<string, long[]> Shapes, Dictionary<string, object?> Extras);

    /// <summary>Opens a weights or config file for reading: a regular file only (a FIFO or device named like one is
    /// refused with the library's exception, never waited on).</summary>
    internal static ReadOnlyFile OpenFile(string path, int bufferSize = 1 << 16)
    {
        try { return RegularFile.OpenRead(path, bufferSize); }
        catch (NotRegularFileException e)
        {
            throw new MaeModelFileException($"'{path}' is {e.Kind}, not a regular file; only regular files are read.", path, null, e);
        }
    }

    static void CheckZipSignature(string path)
    {
        using var stream = OpenFile(path, 16);
        var signature = new byte[4];
        int got = stream.ReadAtLeast(signature, 4, throwOnEndOfStream: false);
        if (got < 4 || signature[0] != 0x50 || signature[1] != 0x4b || signature[2] != 0x03 || signature[3] != 0x04)
        {
            bool legacyPickle = got >= 2 && signature[0] == 0x80;
            throw new MaeModelFileException(legacyPickle
                ? $"'{path}' was written by the legacy (pre-1.6, non-zip) torch.save format, which is not supported. " +
                  "Re-save it in PyTorch ≥ 1.6: torch.save(torch.load(path), path)."
                : $"'{path}' is not a PyTorch weights file: expected a zip archive (torch.save) or a .safetensors file.", path, null);
        }
    }

    public static Contents ReadTorchPickle(string path, MaeLoadLimits limits)
    {
        CheckZipSignature(path);
        using var archive = TorchArchive.Open(path, limits);
        var root = WeightsUnpickler.Load(archive.ReadPickle(limits), archive, limits);
        var (stateDict, extras) = Split(root, path);

        long total = 0;
        foreach (var (key, t) in stateDict)
            total += t.NumberOfElements * ElementSize(t.DType);
        if (total > limits.MaxTensorBytes)
            throw new MaeModelFileException(
                $"'{path}': its state dict holds {total} bytes of tensors, more than MaeLoadLimits.MaxTensorBytes ({limits.MaxTensorBytes}).", path, null);
        if (total > archive.BudgetLeft)
            throw new MaeModelFileException(
                $"'{path}': its state dict needs {total} bytes of tensors, more than its {archive.FileLength} bytes on disk allow " +
                $"(× MaeLoadLimits.MaxCompressionRatio {limits.MaxCompressionRatio}); refusing a possible zip bomb.", path, null);

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (key, t) in stateDict)
            {
                var tensor = empty(t.Shape.ToArray(), t.DType);
                tensors[key] = tensor;
                archive.ReadStorage(t.StorageKey, tensor);
            }
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return new Contents(tensors, extras);
    }

    /// <summary>Finds the state dict in a checkpoint: <c>{'model': sd, ...}</c> (official), <c>{'state_dict': sd}</c>,
    /// or a bare state dict. Everything else at the top level is returned as extras (epoch, args, ...), with its
    /// tensors described, not loaded.</summary>
    static (Dictionary<string, MaeUnloadedTensor> StateDict, Dictionary<string, object?> Extras) Split(object? rootObject, string path)
    {
        if (rootObject is not Dictionary<object, object?> root)
            throw new MaeModelFileException($"'{path}' holds no state dict: its pickle is a {rootObject?.GetType().Name ?? "None"}, not a dict.", path, null);
        Dictionary<object, object?>? sd = null;
        foreach (var key in new[] { "model", "state_dict", "model_state_dict" })
            if (root.TryGetValue(key, out var v) && v is Dictionary<object, object?> h) { sd = h; break; }
        if (sd is null && root.Values.Any(v => v is MaeUnloadedTensor)) sd = root;
        if (sd is null)
            throw new MaeModelFileException(
                $"'{path}' holds no state dict: expected {{'model': state_dict, ...}} or a dict of tensors; top-level keys: " +
                string.Join(", ", root.Keys.Select(k => $"'{k}'")) + ".", path, null);
        var extras = new Dictionary<string, object?>();
        foreach (var (key, value) in root)
            if (!ReferenceEquals(value, sd)) extras[key.ToString()!] = value;
        var tensors = new Dictionary<string, MaeUnloadedTensor>(StringComparer.Ordinal);
        foreach (var (key, value) in sd)
            if (value is MaeUnloadedTensor t)
            {
                if (key is not string name)
                    throw new MaeModelFileException($"'{path}': a state dict key is {key} ({key.GetType().Name}), not a string.", path, null);
                tensors[name] = t;
            }
        return (tensors, extras);
    }

    static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };

    static readonly Dictionary<string, ScalarType> SafetensorsDtypes = new(StringComparer.Ordinal)
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16, ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32, ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    sealed record SafetensorsEntry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

    /// <summary>Reads a safetensors file under the format's own rules (as the reference Rust reader validates them):
    /// a JSON header of unique names, each with dtype, shape and [begin, end) offsets whose ranges tile the data
    /// section exactly — no gaps, no overlaps, no duplicates — then loads each tensor from exactly its range.</summary>
    public static Dictionary<string, Tensor> ReadSafetensors(string path, MaeLoadLimits limits)
    {
        using var stream = OpenFile(path);
        var (entries, dataStart) = ReadSafetensorsHeader(stream, path, limits);

        long total = entries.Sum(e => e.End - e.Begin);
        if (total > limits.MaxTensorBytes)
            throw new MaeModelFileException(
                $"'{path}' holds {total} bytes of tensors, more than MaeLoadLimits.MaxTensorBytes ({limits.MaxTensorBytes}).", path, null);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        string? current = null;
        try
        {
            foreach (var e in entries)
            {
                current = e.Name;
                var t = empty(e.Shape, e.DType);
                tensors[e.Name] = t;
                stream.Position = dataStart + e.Begin;
                t.ReadBytesFromStream(stream, 1 << 16);
            }
            stream.CheckUnchanged();   // safetensors carries no checksum: at least every tensor is from one version of the file
        }
        catch (FileChangedException ex)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new MaeModelFileException($"'{path}' changed while its tensors were read (rewritten, truncated or grown), so none is used.", path, null, ex);
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException and not MaeModelFileException)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new MaeModelFileException($"'{path}': tensor '{current}' could not be read ({ex.Message}); the file changed or is truncated.", path, current, ex);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return tensors;
    }

    /// <summary>The safetensors header of <paramref name="stream"/>, checked (see <see cref="ReadSafetensors"/>), and where
    /// the data section starts.</summary>
    static (List<SafetensorsEntry> Entries, long DataStart) ReadSafetensorsHeader(FileStream stream, string path, MaeLoadLimits limits)
    {
        long fileLength = stream.Length;
        var lengthBytes = new byte[8];
        if (stream.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8)
            throw new MaeModelFileException($"'{path}' is truncated: no safetensors header.", path, null);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new MaeModelFileException($"'{path}' is corrupt or truncated: its header claims {headerLength} bytes but the file has {fileLength}.", path, null);
        if (headerLength > (ulong)limits.MaxSafetensorsHeaderBytes)
            throw new MaeModelFileException(
                $"'{path}': its safetensors header claims {headerLength} bytes, more than MaeLoadLimits.MaxSafetensorsHeaderBytes ({limits.MaxSafetensorsHeaderBytes}).", path, null);
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataStart = 8 + (long)headerLength, dataLength = fileLength - dataStart;
        return (ParseSafetensorsHeader(header, path, dataLength), dataStart);
    }

    static List<SafetensorsEntry> ParseSafetensorsHeader(byte[] header, string path, long dataLength)
    {
        MaeModelFileException Bad(string why, string? entry = null)
            => new($"'{path}' has a malformed safetensors header: {why}.", path, entry);
        if (header.Length == 0 || header[0] != (byte)'{') throw Bad("it does not start with '{'");
        var entries = new List<SafetensorsEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("it is not a JSON object");
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                string name = property.Name;
                if (!names.Add(name)) throw Bad($"the name '{name}' appears twice", name);
                var v = property.Value;
                if (name == "__metadata__")
                {
                    if (v.ValueKind != JsonValueKind.Object || v.EnumerateObject().Any(m => m.Value.ValueKind != JsonValueKind.String))
                        throw Bad("__metadata__ is not a map of strings", name);
                    continue;
                }
                if (v.ValueKind != JsonValueKind.Object) throw Bad($"tensor '{name}' is not an object", name);
                foreach (var field in v.EnumerateObject())
                    if (field.Name is not ("dtype" or "shape" or "data_offsets"))
                        throw Bad($"tensor '{name}' has an unknown field '{field.Name}'", name);
                if (!v.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
                    throw Bad($"tensor '{name}' has no dtype", name);
                string dtype = dtypeElement.GetString()!;
                if (!SafetensorsDtypes.TryGetValue(dtype, out var scalarType))
                    throw new MaeModelFileException($"'{path}': tensor '{name}' has unsupported dtype '{dtype}'.", path, name);
                if (!v.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array || shapeElement.GetArrayLength() > 32)
                    throw Bad($"tensor '{name}' has no shape list", name);
                var shape = new long[shapeElement.GetArrayLength()];
                long numel = 1;
                int i = 0;
                foreach (var d in shapeElement.EnumerateArray())
                {
                    if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long s) || s < 0)
                        throw Bad($"tensor '{name}' has a shape entry {d.GetRawText()} that is not a non-negative integer", name);
                    if (s > 0 && numel > dataLength / s)
                        throw new MaeModelFileException($"'{path}': tensor '{name}' has an impossible shape (more elements than the file holds).", path, name);
                    numel *= s;
                    shape[i++] = s;
                }
                if (!v.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
                    || offsetsElement.GetArrayLength() != 2 || offsetsElement.EnumerateArray().Any(o => o.ValueKind != JsonValueKind.Number || !o.TryGetInt64(out _)))
                    throw Bad($"tensor '{name}' has no [begin, end] data_offsets", name);
                long begin = offsetsElement[0].GetInt64(), end = offsetsElement[1].GetInt64();
                if (begin < 0 || end < begin || end > dataLength)
                    throw new MaeModelFileException(
                        $"'{path}' is corrupt or truncated: tensor '{name}' lies at bytes [{begin}, {end}] but the data section holds {dataLength}.", path, name);
                int size = ElementSize(scalarType);
                if (end - begin != numel * size)
                    throw new MaeModelFileException(
                        $"'{path}': tensor '{name}' ({dtype}, {numel} elements) should take {numel * size} bytes but takes {end - begin}.", path, name);
                entries.Add(new SafetensorsEntry(name, scalarType, shape, begin, end));
            }
        }
        catch (JsonException e) { throw Bad($"{e.Message}"); }

        // The ranges must tile [0, dataLength): sorted by start, each begins where the previous ended.
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long at = 0;
        string? previous = null;
        foreach (var e in sorted)
        {
            if (e.Begin < at)
                throw new MaeModelFileException(
                    $"'{path}': tensors '{previous}' and '{e.Name}' overlap (bytes [{e.Begin}, {e.End}] start before {at}); safetensors ranges must not overlap.", path, e.Name);
            if (e.Begin > at)
                throw new MaeModelFileException(
                    $"'{path}': bytes [{at}, {e.Begin}) of the data section belong to no tensor; safetensors ranges must cover the data without gaps.", path, e.Name);
            at = e.End;
            previous = e.Name;
        }
        if (at != dataLength)
            throw new MaeModelFileException(
                $"'{path}': the tensors end at byte {at} of a {dataLength}-byte data section; the rest belongs to no tensor.", path, null);
        return entries;
    }
}
