using System.Buffers.Binary;
using System.IO.Compression;

namespace Mae.MLNet.Input;

/// <summary>Reads the IDX format of MNIST / Fashion-MNIST (optionally gzip-compressed): a big-endian header
/// (0x0000, type 0x08 = unsigned byte, rank) and rank big-endian dimension sizes, then the raw bytes.</summary>
internal static class IdxFile
{
    public sealed record Contents(int[] Dimensions, byte[] Data);

    public static Contents Read(string path, int? maxItems = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file '{path}' does not exist.", path);
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        var header = new byte[4];
        ReadExactly(stream, header, path);
        if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] is 0 or > 4)
            throw new InvalidDataException(
                $"'{path}' is not an unsigned-byte IDX file: expected magic 00 00 08 0r (rank 1–4); got {Convert.ToHexString(header)}.");
        var dims = new int[header[3]];
        var buffer = new byte[4];
        for (int i = 0; i < dims.Length; i++)
        {
            ReadExactly(stream, buffer, path);
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(buffer);
            if (dims[i] < 0) throw new InvalidDataException($"'{path}': dimension {i} is negative ({dims[i]}).");
        }
        if (maxItems is int max && max >= 0 && dims[0] > max) dims[0] = max;
        long total = dims.Aggregate(1L, (a, d) => a * d);
        if (total > int.MaxValue) throw new InvalidDataException($"'{path}' claims {total} bytes of data; more than this reader supports.");
        var data = new byte[total];
        ReadExactly(stream, data, path);
        return new Contents(dims, data);
    }

    static void ReadExactly(Stream stream, byte[] buffer, string path)
    {
        try { stream.ReadExactly(buffer); }
        catch (EndOfStreamException e) { throw new InvalidDataException($"'{path}' is truncated.", e); }
    }
}
