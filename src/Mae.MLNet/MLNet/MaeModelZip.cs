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
/// <see cref="LoadVerified(ModelOperationsCatalog, string, out DataViewSchema)"/> does that before <c>Model.Load</c>.
/// The rest of the zip (the pipeline ML.NET builds around the graphs) is covered by the CRCs only, which a zip tool
/// recomputes — unless the zip is sealed (<see cref="Seal"/>, as <c>mae finetune</c> does): then every entry is held
/// to the seal's SHA-256, and <c>requireSeal</c> refuses a zip without one. Users reach these through the model
/// catalog (<c>mlContext.Model.Verify</c> / <c>LoadVerified</c> / <c>Seal</c>, <see cref="Microsoft.ML.MaeCatalog"/>).
/// </summary>
internal static class MaeModelZip
{
    /// <summary>Checks the CRC-32 of every entry of the zip at <paramref name="path"/> and the SHA-256 digest of every
    /// ONNX graph in it. Returns the names of the graph entries verified. The zip must be a regular file (a FIFO or
    /// device is refused, never waited on); every entry is read in 64 KiB chunks against its real length, never
    /// allocated at its declared size, and the whole zip may not decompress to more than
    /// <see cref="MaeLoadLimits.MaxCompressionRatio"/> times its size on disk.</summary>
    /// <exception cref="MaeModelFileException">An entry fails its CRC, a graph fails its digest, two entries have one
    /// name as ML.NET looks names up, a graph carries no digest (also beside graphs that do: ML.NET would load it
    /// unverified), or the zip holds no graph at all; the message names the zip and the entry.</exception>
    public static IReadOnlyList<string> Verify(string path) => Verify(path, requireSeal: false);

    /// <summary><see cref="Verify(string)"/>; with <paramref name="requireSeal"/> a zip without a seal
    /// (<see cref="Seal"/>) is refused too, so every entry ML.NET loads — the transformer chain, column names, other
    /// transformers' parameters, not only the graphs — is verified, or the zip is refused. A sealed zip is held to
    /// its seal whatever <paramref name="requireSeal"/> says.</summary>
    public static IReadOnlyList<string> Verify(string path, bool requireSeal)
    {
        using var stream = Open(path);
        var verified = Verify(stream, path, requireSeal);
        Unchanged(stream, path);
        return verified;
    }

    /// <summary>The entry <see cref="Seal"/> adds: one line per other entry, "SHA-256 length name", sorted by name.
    /// ML.NET opens entries by name and never this one.</summary>
    public const string SealEntryName = "Mae.MLNet.Seal";

    /// <summary>Seals the model zip at <paramref name="path"/> (saved by <c>Model.Save</c>, its graphs verified first):
    /// adds <see cref="SealEntryName"/>, the SHA-256 and length of every other entry, so that <see cref="Verify(string)"/>
    /// and <see cref="LoadVerified(ModelOperationsCatalog, string, out DataViewSchema)"/> refuse any entry changed,
    /// added or removed afterwards — the pipeline outside the graphs included, which the zip's CRCs alone do not
    /// protect (a zip tool recomputes them). The file is replaced atomically. Like the graphs' digests this detects
    /// damage and edits made without this library, not a forger who recomputes the seal.</summary>
    public static void Seal(string path)
    {
        var bytes = ReadOnce(path);
        using (var memory = new MemoryStream(bytes, writable: false)) Verify(memory, path, requireSeal: false);
        var lines = new List<string>();
        using (var zip = new ZipArchive(new MemoryStream(bytes, writable: false), ZipArchiveMode.Read))
        {
            if (zip.Entries.Any(e => Key(e.FullName) == SealEntryName))
                throw new MaeModelFileException($"Model zip '{path}' is sealed already.", path, SealEntryName);
            foreach (var entry in zip.Entries)
            {
                using var s = entry.Open();
                lines.Add($"{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(s))} {entry.Length} {Key(entry.FullName)}");
            }
        }
        lines.Sort(StringComparer.Ordinal);
        var withSeal = new MemoryStream();
        withSeal.Write(bytes);
        withSeal.Position = 0;
        using (var zip = new ZipArchive(withSeal, ZipArchiveMode.Update, leaveOpen: true))
        using (var seal = new StreamWriter(zip.CreateEntry(SealEntryName, CompressionLevel.Optimal).Open()))
            foreach (var line in lines) seal.Write(line + "\n");
        AtomicFile.Write(path, output => withSeal.WriteTo(output));
    }

    /// <summary><see cref="Verify(string)"/>, then ML.NET's <c>Model.Load</c>, both from one copy of the file in memory
    /// (read once, and refused if the file changed while it was read): what ML.NET loads is exactly the bytes that were
    /// checked, not a file swapped in under its name or rewritten in place meanwhile. The copy costs the zip's size in
    /// memory while ML.NET loads it (which holds its graphs in memory too).</summary>
    public static ITransformer LoadVerified(ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema)
        => LoadVerified(catalog, path, requireSeal: false, out inputSchema);

    /// <summary><see cref="LoadVerified(ModelOperationsCatalog, string, out DataViewSchema)"/>; with
    /// <paramref name="requireSeal"/> an unsealed zip is refused (see <see cref="Verify(string, bool)"/>).</summary>
    public static ITransformer LoadVerified(ModelOperationsCatalog catalog, string path, bool requireSeal, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        using var memory = new MemoryStream(ReadOnce(path), writable: false);
        Verify(memory, path, requireSeal);
        memory.Position = 0;
        return catalog.Load(memory, out inputSchema);
    }

    /// <summary>The whole file, read once from one open handle and refused if it changed meanwhile.</summary>
    static byte[] ReadOnce(string path)
    {
        using var file = Open(path);
        if (file.Length > Array.MaxLength)
            throw new MaeModelFileException($"Model zip '{path}' is {file.Length} bytes, more than one buffer can hold ({Array.MaxLength}).", path, null);
        var bytes = new byte[file.Length];
        try { file.ReadExactly(bytes); }
        catch (EndOfStreamException e) { throw new MaeModelFileException($"Model zip '{path}' became shorter while it was read.", path, null, e); }
        Unchanged(file, path);
        return bytes;
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

    /// <summary>Every entry but the seal must be listed in it with the same SHA-256 and length, and every listed entry
    /// must be there.</summary>
    static void CheckSeal(string seal, Dictionary<string, string> hashes, Func<string, string?, MaeModelFileException> bad)
    {
        var listed = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in seal.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 3);
            if (parts.Length != 3 || parts[0].Length != 64 || !long.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)
                || !listed.TryAdd(parts[2], $"{parts[0]} {parts[1]}"))
                throw bad($"its seal has a malformed or repeated line '{(line.Length > 120 ? line[..120] + "…" : line)}'", SealEntryName);
        }
        foreach (var (name, hash) in hashes)
        {
            if (!listed.TryGetValue(name, out var expected))
                throw bad($"entry '{name}' is not in its seal: it was added after the zip was sealed", name);
            if (!string.Equals(expected, hash, StringComparison.OrdinalIgnoreCase))
                throw bad($"entry '{name}' differs from its seal (SHA-256 and length {expected.ToLowerInvariant()} sealed, {hash.ToLowerInvariant()} now): it was edited after the zip was sealed", name);
        }
        foreach (var name in listed.Keys)
            if (!hashes.ContainsKey(name)) throw bad($"entry '{name}' named in its seal is missing: it was removed after the zip was sealed", name);
    }

    /// <summary>The name ML.NET's repository reader keys an entry by: it turns '/' into the platform's separator, so
    /// on Windows 'a/b' and 'a\b' are one entry (the last one wins). Both separators are folded here, on every
    /// platform, so a zip is refused wherever any ML.NET would see two entries as one.</summary>
    static string Key(string entryName) => entryName.Replace('\\', '/');

    static IReadOnlyList<string> Verify(Stream stream, string path, bool requireSeal)
    {
        MaeModelFileException Bad(string why, string? entry) => new($"Model zip '{path}' fails its integrity check: {why}.", path, entry);
        var limits = MaeLoadLimits.Default;
        long budget = (long)Math.Min(long.MaxValue / 2, limits.MaxCompressionRatio * Math.Max(stream.Length, 1));
        long total = 0;
        var verified = new List<string>();
        var unsigned = new List<string>();
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);   // "SHA-256 length" by entry key, for the seal
        string? sealText = null;
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
                using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                bool isSeal = key == SealEntryName;
                if (isSeal && entry.Length > 200L * (limits.MaxArchiveEntries + 1) + 4096)
                    throw Bad($"its seal '{entry.FullName}' claims {entry.Length} bytes, more than a seal of {limits.MaxArchiveEntries} entries takes", entry.FullName);
                var sealBytes = isSeal ? new MemoryStream() : null;
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
                        sha.AppendData(chunk);
                        sealBytes?.Write(chunk);
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
                if (isSeal) sealText = System.Text.Encoding.UTF8.GetString(sealBytes!.ToArray());
                else hashes[key] = $"{Convert.ToHexString(sha.GetHashAndReset())} {at}";
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
        if (sealText is not null) CheckSeal(sealText, hashes, Bad);
        else if (requireSeal)
            throw Bad($"it carries no seal ('{SealEntryName}'), so the entries outside its ONNX graphs (the pipeline ML.NET builds) are unverified; " +
                      "seal it with MaeModelZip.Seal after Model.Save, or load it without requiring a seal", null);
        return verified;
    }
}
