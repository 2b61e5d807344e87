using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using Mae.MLNet.Interop;
using Mae.MLNet.Interop.Onnx;
using Microsoft.ML;

namespace Mae.MLNet;

/// <summary>
/// Integrity of model zips that hold our transformers. <c>Model.Save</c> stores a featurizer or fine-tuned classifier
/// as ML.NET's <c>OnnxTransformer</c>, whose zip entry <c>…/OnnxModel</c> is the ONNX graph we exported, and that graph
/// carries a SHA-256 of itself (<see cref="OnnxDigest"/>). ML.NET's plain <c>Model.Load</c> checks neither: .NET's
/// zip reader does not verify CRC-32s, and ONNX Runtime only rejects bytes that do not parse as a valid graph, so a
/// changed weight loads silently. <see cref="Verify"/> checks every entry's CRC-32 and every graph's digest;
/// <see cref="LoadVerified"/> does that before <c>Model.Load</c>.
/// </summary>
public static class MaeModelZip
{
    /// <summary>Checks the CRC-32 of every entry of the zip at <paramref name="path"/> and the SHA-256 digest of every
    /// ONNX graph in it that Mae.MLNet wrote. Returns the names of the graph entries verified.</summary>
    /// <exception cref="MaeModelFileException">An entry fails its CRC, a graph fails its digest, or the zip holds no
    /// graph with a digest (saved by another library or an older version); the message names the zip and the entry.</exception>
    public static IReadOnlyList<string> Verify(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model zip '{path}' does not exist.", path);
        MaeModelFileException Bad(string why, string? entry) => new($"Model zip '{path}' fails its integrity check: {why}.", path, entry);
        var verified = new List<string>();
        var unsigned = new List<string>();
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var buffer = new byte[1 << 16];
            foreach (var entry in zip.Entries)
            {
                if (entry.Length > 1032L * Math.Max(entry.CompressedLength, 1))
                    throw Bad($"entry '{entry.FullName}' claims {entry.Length} bytes from {entry.CompressedLength} compressed", entry.FullName);
                bool graph = entry.FullName == "OnnxModel" || entry.FullName.EndsWith("/OnnxModel", StringComparison.Ordinal);
                if (graph && entry.Length > int.MaxValue)
                    throw Bad($"entry '{entry.FullName}' is {entry.Length} bytes, more than an ONNX protobuf can be", entry.FullName);
                var crc = new Crc32();
                var content = graph ? new byte[entry.Length] : null;
                long at = 0;
                using (var s = entry.Open())
                {
                    int n;
                    while ((n = s.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        if (at + n > entry.Length) throw Bad($"entry '{entry.FullName}' holds more than its {entry.Length} bytes", entry.FullName);
                        crc.Append(buffer.AsSpan(0, n));
                        if (content is not null) buffer.AsSpan(0, n).CopyTo(content.AsSpan((int)at));
                        at += n;
                    }
                }
                if (at != entry.Length) throw Bad($"entry '{entry.FullName}' ends after {at} of its {entry.Length} bytes", entry.FullName);
                if (crc.GetCurrentHashAsUInt32() != entry.Crc32)
                    throw Bad($"entry '{entry.FullName}' fails its CRC-32 (stored {entry.Crc32:x8}, computed {crc.GetCurrentHashAsUInt32():x8}); the file was damaged or edited", entry.FullName);
                if (content is null) continue;
                // OnnxTransformer stores the graph as an int32 length followed by the ONNX bytes.
                if (content.Length < 4 || BinaryPrimitives.ReadInt32LittleEndian(content) != content.Length - 4)
                    throw Bad($"entry '{entry.FullName}' is not a length-prefixed ONNX graph", entry.FullName);
                switch (OnnxDigest.Check(content.AsSpan(4)))
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
        if (verified.Count == 0)
            throw Bad(unsigned.Count == 0 ? "it holds no ONNX graph"
                : $"none of its ONNX graphs ({string.Join(", ", unsigned)}) carries a Mae.MLNet digest (saved by another library or an older version)", null);
        return verified;
    }

    /// <summary><see cref="Verify"/>, then ML.NET's <c>Model.Load</c>.</summary>
    public static ITransformer LoadVerified(this ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        Verify(path);
        return catalog.Load(path, out inputSchema);
    }
}
