using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using Mae.MLNet.Interop;
using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Runtime;
using Microsoft.ML;

namespace Mae.MLNet;

/// <summary>
/// Integrity of model zips that hold our transformers. <c>Model.Save</c> stores a featurizer or fine-tuned classifier
/// as ML.NET's <c>OnnxTransformer</c>, whose zip entry <c>…/OnnxModel</c> is the ONNX graph we exported, and that graph
/// carries a SHA-256 of itself (<see cref="OnnxDigest"/>). ML.NET's plain <c>Model.Load</c> checks neither: .NET's
/// zip reader does not verify CRC-32s, and ONNX Runtime only rejects bytes that do not parse as a valid graph, so a
/// changed weight loads silently. <see cref="Verify(string)"/> checks every entry's CRC-32 and every graph's digest;
/// <see cref="LoadVerified"/> does that before <c>Model.Load</c>.
/// </summary>
public static class MaeModelZip
{
    /// <summary>Checks the CRC-32 of every entry of the zip at <paramref name="path"/> and the SHA-256 digest of every
    /// ONNX graph in it. Returns the names of the graph entries verified. The zip must be a regular file (a FIFO or
    /// device is refused, never waited on); every entry is read in 64 KiB chunks against its real length, never
    /// allocated at its declared size, and the whole zip may not decompress to more than
    /// <see cref="MaeLoadLimits.MaxCompressionRatio"/> times its size on disk.</summary>
    /// <exception cref="MaeModelFileException">An entry fails its CRC, a graph fails its digest, two entries have one
    /// name as ML.NET looks names up, a graph carries no digest (also beside graphs that do: ML.NET would load it
    /// unverified), or the zip holds no graph at all; the message names the zip and the entry.</exception>
    public static IReadOnlyList<string> Verify(string path)
    {
        using var stream = Open(path);
        var verified = Verify(stream, path);
        Unchanged(stream, path);
        return verified;
    }

    /// <summary><see cref="Verify(string)"/>, then ML.NET's <c>Model.Load</c>, both from one copy of the file in memory
    /// (read once, and refused if the file changed while it was read): what ML.NET loads is exactly the bytes that were
    /// checked, not a file swapped in under its name or rewritten in place meanwhile. The copy costs the zip's size in
    /// memory while ML.NET loads it (which holds its graphs in memory too).</summary>
    public static ITransformer LoadVerified(this ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        byte[] bytes;
        using (var file = Open(path))
        {
            if (file.Length > Array.MaxLength)
                throw new MaeModelFileException($"Model zip '{path}' is {file.Length} bytes, more than one buffer can hold ({Array.MaxLength}).", path, null);
            bytes = new byte[file.Length];
            try { file.ReadExactly(bytes); }
            catch (EndOfStreamException e) { throw new MaeModelFileException($"Model zip '{path}' became shorter while it was read.", path, null, e); }
            Unchanged(file, path);
        }
        using var memory = new MemoryStream(bytes, writable: false);
        Verify(memory, path);
        memory.Position = 0;
        return catalog.Load(memory, out inputSchema);
    }

    static void Unchanged(ReadOnlyFile file, string path)
    {
        try { file.CheckUnchanged(); }
        catch (FileChangedException e) { throw new MaeModelFileException($"Model zip '{path}' changed while it was read; it is not used ({e.Message}).", path, null, e); }
    }

    static ReadOnlyFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try { return RegularFile.OpenRead(path, 1 << 16); }
        catch (FileNotFoundException e) { throw new FileNotFoundException($"Model zip '{path}' does not exist.", path, e); }
        catch (NotRegularFileException e) { throw new MaeModelFileException($"Model zip '{path}' is {e.Kind}, not a regular file; only regular files are read.", path, null, e); }
    }

    /// <summary>The name ML.NET's repository reader keys an entry by: it turns '/' into the platform's separator, so
    /// on Windows 'a/b' and 'a\b' are one entry (the last one wins). Both separators are folded here, on every
    /// platform, so a zip is refused wherever any ML.NET would see two entries as one.</summary>
    static string Key(string entryName) => entryName.Replace('\\', '/');

    static IReadOnlyList<string> Verify(Stream stream, string path)
    {
        MaeModelFileException Bad(string why, string? entry) => new($"Model zip '{path}' fails its integrity check: {why}.", path, entry);
        var limits = MaeLoadLimits.Default;
        long budget = (long)Math.Min(long.MaxValue / 2, limits.MaxCompressionRatio * Math.Max(stream.Length, 1));
        long total = 0;
        var verified = new List<string>();
        var unsigned = new List<string>();
        try
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
            if (zip.Entries.Count > limits.MaxArchiveEntries)
                throw Bad($"it holds {zip.Entries.Count} entries, more than MaeLoadLimits.MaxArchiveEntries ({limits.MaxArchiveEntries})", null);
            var names = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in zip.Entries)
                if (!names.TryAdd(Key(entry.FullName), entry.FullName))
                    throw Bad($"two entries are named '{entry.FullName}'{(names[Key(entry.FullName)] == entry.FullName ? "" : $" and '{names[Key(entry.FullName)]}'")} " +
                              "(ML.NET would load only one of them, perhaps not the one checked)", entry.FullName);
            var buffer = new byte[1 << 16];
            var prefix = new byte[4];
            foreach (var entry in zip.Entries)
            {
                if (entry.Length > 1032L * Math.Max(entry.CompressedLength, 1))
                    throw Bad($"entry '{entry.FullName}' claims {entry.Length} bytes from {entry.CompressedLength} compressed", entry.FullName);
                string key = Key(entry.FullName);
                bool graph = key == "OnnxModel" || key.EndsWith("/OnnxModel", StringComparison.Ordinal);
                if (graph && entry.Length > int.MaxValue)
                    throw Bad($"entry '{entry.FullName}' is {entry.Length} bytes, more than an ONNX protobuf can be", entry.FullName);
                var crc = new Crc32();
                using var digest = graph ? new OnnxDigest.Checker() : null;
                long at = 0;
                using (var s = entry.Open())
                {
                    int n;
                    while ((n = s.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        if (at + n > entry.Length) throw Bad($"entry '{entry.FullName}' holds more than its {entry.Length} bytes", entry.FullName);
                        if ((total += n) > budget)
                            throw Bad($"it decompresses to more than {budget} bytes, MaeLoadLimits.MaxCompressionRatio ({limits.MaxCompressionRatio}) times its {stream.Length} bytes", entry.FullName);
                        var chunk = buffer.AsSpan(0, n);
                        crc.Append(chunk);
                        if (digest is not null)
                        {
                            // OnnxTransformer stores the graph as an int32 length followed by the ONNX bytes.
                            int p = (int)Math.Max(0, Math.Min(4 - at, n));
                            if (p > 0) chunk[..p].CopyTo(prefix.AsSpan((int)at));
                            digest.Append(chunk[p..]);
                        }
                        at += n;
                    }
                }
                if (at != entry.Length) throw Bad($"entry '{entry.FullName}' ends after {at} of its {entry.Length} bytes", entry.FullName);
                if (crc.GetCurrentHashAsUInt32() != entry.Crc32)
                    throw Bad($"entry '{entry.FullName}' fails its CRC-32 (stored {entry.Crc32:x8}, computed {crc.GetCurrentHashAsUInt32():x8}); the file was damaged or edited", entry.FullName);
                if (digest is null) continue;
                if (at < 4 || BinaryPrimitives.ReadInt32LittleEndian(prefix) != at - 4)
                    throw Bad($"entry '{entry.FullName}' is not a length-prefixed ONNX graph", entry.FullName);
                switch (digest.Finish())
                {
                    case OnnxDigest.Status.Valid: verified.Add(entry.FullName); break;
                    case OnnxDigest.Status.Missing: unsigned.Add(entry.FullName); break;
                    case OnnxDigest.Status.Mismatch:
                        throw Bad($"the ONNX graph in '{entry.FullName}' does not match the SHA-256 recorded in it when it was saved; it was edited", entry.FullName);
                    default:
                        throw Bad($"the ONNX graph in '{entry.FullName}' is not a well-formed protobuf message", entry.FullName);
                }
            }
        }
        catch (InvalidDataException e) { throw new MaeModelFileException($"Model zip '{path}' is truncated or corrupt: {e.Message}", path, null, e); }
        if (unsigned.Count > 0)
            throw Bad(verified.Count == 0
                    ? $"none of its ONNX graphs ({string.Join(", ", unsigned)}) carries a Mae.MLNet digest (saved by another library or an older version)"
                    : $"its ONNX graph{(unsigned.Count > 1 ? "s" : "")} {string.Join(", ", unsigned)} carr{(unsigned.Count > 1 ? "y" : "ies")} no digest beside the verified {string.Join(", ", verified)}; ML.NET would load the unverified graph too",
                unsigned[0]);
        if (verified.Count == 0) throw Bad("it holds no ONNX graph", null);
        return verified;
    }
}
