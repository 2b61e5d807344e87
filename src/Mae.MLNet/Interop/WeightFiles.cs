using System.Collections;
using System.IO.Compression;
using System.Text.Json;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>Reads tensors from the files people download: zip-format <c>torch.save</c> pickles (.pth / .bin) and
/// safetensors. Every file is validated before any tensor is built (see <see cref="PickleGuard"/>).</summary>
internal static class WeightFiles
{
    const long MaxPickleBytes = 256L << 20;
    const long MaxSafetensorsHeader = 100L << 20;

    public sealed record Contents(Dictionary<string, Tensor> Tensors, Dictionary<string, object?> Extras);

    public static Contents Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        return path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            ? new Contents(ReadSafetensors(path), new())
            : ReadTorchPickle(path);
    }

    public static Contents ReadTorchPickle(string path)
    {
        using var stream = File.OpenRead(path);
        var signature = new byte[4];
        int got = stream.Read(signature, 0, 4);
        if (got < 4 || signature[0] != 0x50 || signature[1] != 0x4b || signature[2] != 0x03 || signature[3] != 0x04)
        {
            bool legacyPickle = got >= 2 && signature[0] == 0x80;
            throw new MaeCheckpointException(legacyPickle
                ? $"'{path}' was written by the legacy (pre-1.6, non-zip) torch.save format, which is not supported. " +
                  "Re-save it in PyTorch ≥ 1.6: torch.save(torch.load(path), path)."
                : $"'{path}' is not a PyTorch weights file: expected a zip archive (torch.save) or a .safetensors file.");
        }
        stream.Position = 0;
        byte[] pickle;
        ZipArchive archive;
        try
        {
            archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new MaeCheckpointException($"'{path}' is truncated or corrupt: its zip directory cannot be read ({e.Message}).", e);
        }
        using (archive)
        {
            var pkl = archive.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) || e.FullName == "data.pkl").ToList();
            if (pkl.Count != 1)
                throw new MaeCheckpointException($"'{path}' is not a torch.save archive: expected one data.pkl entry, found {pkl.Count}.");
            if (pkl[0].Length > MaxPickleBytes)
                throw new MaeCheckpointException($"'{path}': data.pkl claims {pkl[0].Length} bytes; refusing more than {MaxPickleBytes}.");
            try
            {
                using var s = pkl[0].Open();
                using var ms = new MemoryStream((int)pkl[0].Length);
                s.CopyTo(ms);
                pickle = ms.ToArray();
            }
            catch (InvalidDataException e)
            {
                throw new MaeCheckpointException($"'{path}' is corrupt: data.pkl cannot be read ({e.Message}).", e);
            }
            string prefix = pkl[0].FullName[..^"data.pkl".Length];
            PickleGuard.Check(pickle, archive, prefix, path);
        }

        Hashtable root;
        try
        {
            stream.Position = 0;
            root = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true);
        }
        catch (Exception e) when (e is not MaeCheckpointException and not OutOfMemoryException)
        {
            throw new MaeCheckpointException($"'{path}' could not be unpickled: {e.Message}", e);
        }
        return Split(root, path);
    }

    /// <summary>Finds the state dict in a checkpoint: <c>{'model': sd, ...}</c> (official), <c>{'state_dict': sd}</c>,
    /// or a bare state dict. Everything else at the top level is returned as extras (epoch, args, ...).</summary>
    static Contents Split(Hashtable root, string path)
    {
        Hashtable? sd = null;
        var extras = new Dictionary<string, object?>();
        foreach (var key in new[] { "model", "state_dict", "model_state_dict" })
            if (root[key] is Hashtable h) { sd = h; break; }
        if (sd is null && root.Values.Cast<object?>().Any(v => v is Tensor)) sd = root;
        if (sd is null)
            throw new MaeCheckpointException(
                $"'{path}' holds no state dict: expected {{'model': state_dict, ...}} or a dict of tensors; top-level keys: " +
                string.Join(", ", root.Keys.Cast<object>().Select(k => $"'{k}'")) + ".");
        foreach (DictionaryEntry e in root)
            if (!ReferenceEquals(e.Value, sd)) extras[e.Key.ToString()!] = e.Value;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in sd)
            if (e.Value is Tensor t) tensors[e.Key.ToString()!] = t;
        return new Contents(tensors, extras);
    }

    static readonly Dictionary<string, int> SafetensorsDtypeSize = new()
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1,
        ["U8"] = 1, ["BOOL"] = 1,
    };

    public static Dictionary<string, Tensor> ReadSafetensors(string path)
    {
        long fileLength = new FileInfo(path).Length;
        using (var stream = File.OpenRead(path))
        {
            var lengthBytes = new byte[8];
            if (stream.Read(lengthBytes, 0, 8) < 8) throw new MaeCheckpointException($"'{path}' is truncated: no safetensors header.");
            ulong headerLength = BitConverter.ToUInt64(lengthBytes);
            if (headerLength > (ulong)Math.Min(fileLength - 8, MaxSafetensorsHeader))
                throw new MaeCheckpointException($"'{path}' is corrupt or truncated: its header claims {headerLength} bytes but the file has {fileLength}.");
            var header = new byte[headerLength];
            stream.ReadExactly(header);
            long dataLength = fileLength - 8 - (long)headerLength;
            try
            {
                using var doc = JsonDocument.Parse(header);
                foreach (var entry in doc.RootElement.EnumerateObject())
                {
                    if (entry.Name == "__metadata__") continue;
                    string dtype = entry.Value.GetProperty("dtype").GetString() ?? "";
                    if (!SafetensorsDtypeSize.TryGetValue(dtype, out int size))
                        throw new MaeCheckpointException($"'{path}': tensor '{entry.Name}' has unsupported dtype '{dtype}'.");
                    long numel = 1;
                    foreach (var d in entry.Value.GetProperty("shape").EnumerateArray())
                    {
                        long v = d.GetInt64();
                        if (v < 0 || (v > 0 && numel > dataLength / v)) throw new MaeCheckpointException($"'{path}': tensor '{entry.Name}' has an impossible shape.");
                        numel *= v;
                    }
                    var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt64()).ToArray();
                    if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength)
                        throw new MaeCheckpointException(
                            $"'{path}' is corrupt or truncated: tensor '{entry.Name}' lies at bytes [{string.Join(", ", offsets)}] but the data section holds {dataLength}.");
                    if (offsets[1] - offsets[0] != numel * size)
                        throw new MaeCheckpointException(
                            $"'{path}': tensor '{entry.Name}' ({dtype}, {numel} elements) should take {numel * size} bytes but takes {offsets[1] - offsets[0]}.");
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
            {
                throw new MaeCheckpointException($"'{path}' has a malformed safetensors header: {e.Message}", e);
            }
        }
        try
        {
            return Safetensors.LoadStateDict(path);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new MaeCheckpointException($"'{path}' could not be read as safetensors: {e.Message}", e);
        }
    }
}
