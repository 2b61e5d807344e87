using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>
/// The one view of a <c>torch.save</c> zip archive that both the safety check and the load use. PyTorch's own reader
/// (caffe2 <c>PyTorchFileReader</c>) takes the folder of the archive's entries as its name and then looks records up
/// by exact name: <c>&lt;top&gt;/data.pkl</c> and <c>&lt;top&gt;/data/&lt;key&gt;</c>. This class resolves exactly those names
/// and refuses what would let another reader see other bytes: a second top folder, duplicate names, a second
/// <c>*data.pkl</c> or any entry torch.save does not write. Every entry read is checked against its zip CRC-32, its
/// declared size and the archive's uncompressed-bytes budget (<see cref="MaeLoadLimits.MaxCompressionRatio"/>).
/// </summary>
internal sealed class TorchArchive : IDisposable
{
    /// <summary>Records torch.save (1.6 – 2.x) writes beside data.pkl and data/&lt;key&gt;.</summary>
    static readonly HashSet<string> MetadataRecords = new(StringComparer.Ordinal)
    {
        "version", ".data/version", "byteorder", ".data/serialization_id", ".format_version", ".storage_alignment",
    };

    /// <summary>Deflate cannot expand data by more than about 1032:1, so an entry claiming more lies about its size.</summary>
    const double MaxEntryRatio = 1032;

    readonly FileStream stream;
    readonly ZipArchive zip;
    readonly Dictionary<string, ZipArchiveEntry> storages = new(StringComparer.Ordinal);
    readonly ZipArchiveEntry pickle;
    readonly long budget;
    long read;

    public string File { get; }
    /// <summary>The archive's single top folder (PyTorch's "archive name").</summary>
    public string Top { get; }
    public long FileLength { get; }
    public int StorageCount => storages.Count;

    TorchArchive(string file, FileStream stream, ZipArchive zip, MaeLoadLimits limits)
    {
        File = file;
        this.stream = stream;
        this.zip = zip;
        FileLength = stream.Length;
        budget = (long)Math.Min(limits.MaxCompressionRatio * Math.Max(FileLength, 1), long.MaxValue / 2);

        string? top = null;
        ZipArchiveEntry? pkl = null;
        ZipArchiveEntry? byteOrder = null;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in zip.Entries)
        {
            string name = entry.FullName;
            if (!names.Add(name))
                throw Bad($"the archive has two entries named '{name}'; a reader could pick either, so the file is refused", name);
            int slash = name.IndexOf('/');
            if (slash <= 0)
                throw Bad($"entry '{name}' is not inside a folder; torch.save puts every record in one top folder", name);
            string folder = name[..slash], rest = name[(slash + 1)..];
            if (top is null) top = folder;
            else if (folder != top)
                throw Bad($"the archive has two top folders ('{top}' and '{folder}'); torch.save writes one", name);
            if (rest.Length == 0 || rest.EndsWith('/')) continue;                   // a folder entry (re-zipped archives)
            if (rest == "data.pkl") pkl = entry;
            else if (rest.StartsWith("data/", StringComparison.Ordinal) && rest.Length > 5 && rest.IndexOf('/', 5) < 0)
                storages[rest[5..]] = entry;
            else if (MetadataRecords.Contains(rest))
            {
                if (rest == "byteorder") byteOrder = entry;
            }
            else
                throw Bad($"entry '{name}' is not a record torch.save writes (expected {top}/data.pkl, {top}/data/<key> " +
                          $"and the small metadata records {string.Join(", ", MetadataRecords)})", name);
        }
        Top = top ?? throw Bad("the archive is empty", null);
        pickle = pkl ?? throw Bad($"the archive has no '{Top}/data.pkl'; it is not a torch.save file", null);
        if (byteOrder is not null)
        {
            var order = Encoding.ASCII.GetString(ReadSmall(byteOrder, 16));
            if (order != "little")
                throw Bad($"its byteorder record says '{order}'; only little-endian files are supported", byteOrder.FullName);
        }
    }

    /// <summary>Opens <paramref name="path"/> (already known to start with a zip signature) and resolves its records.</summary>
    public static TorchArchive Open(string path, MaeLoadLimits limits)
    {
        var stream = WeightFiles.OpenFile(path);
        try
        {
            CheckDirectory(stream, path, limits);
            ZipArchive zip;
            try { zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true); }
            catch (InvalidDataException e)
            {
                throw new MaeModelFileException($"'{path}' is truncated or corrupt: its zip directory cannot be read ({e.Message}).", path, null, e);
            }
            try { return new TorchArchive(path, stream, zip, limits); }
            catch { zip.Dispose(); throw; }
        }
        catch { stream.Dispose(); throw; }
    }

    /// <summary>The bytes of data.pkl (at most <see cref="MaeLoadLimits.MaxPickleBytes"/>), CRC-checked.</summary>
    public byte[] ReadPickle(MaeLoadLimits limits)
    {
        if (pickle.Length > limits.MaxPickleBytes)
            throw Bad($"'{pickle.FullName}' claims {pickle.Length} bytes; a state dict's pickle is far smaller, and more than " +
                      $"MaeLoadLimits.MaxPickleBytes ({limits.MaxPickleBytes}) is refused", pickle.FullName);
        return ReadSmall(pickle, limits.MaxPickleBytes);
    }

    public string PickleName => pickle.FullName;

    /// <summary>The uncompressed size of <c>data/&lt;key&gt;</c>; throws naming the file if there is no such entry.</summary>
    public long StorageLength(string key, Func<string, Exception> bad)
        => storages.TryGetValue(key, out var e) ? e.Length : throw bad($"the archive has no entry 'data/{key}' for a tensor");

    public string StorageEntryName(string key) => $"{Top}/data/{key}";

    /// <summary>Bytes this archive may still decompress under its budget.</summary>
    public long BudgetLeft => budget - read;

    /// <summary>Fills <paramref name="into"/> (contiguous, CPU, exactly the entry's size or a prefix of it) from
    /// <c>data/&lt;key&gt;</c>, checking the entry's CRC-32 over all its bytes.</summary>
    public void ReadStorage(string key, Tensor into)
    {
        var entry = storages[key];
        long want = into.NumberOfElements * into.ElementSize;
        if (want > entry.Length) throw Bad($"entry '{entry.FullName}' holds {entry.Length} bytes, fewer than the {want} its tensor needs", entry.FullName);
        using var s = OpenChecked(entry);
        try
        {
            into.ReadBytesFromStream(s, 1 << 16);
            s.CopyTo(Stream.Null);   // a tensor may use a prefix of its storage; the CRC covers the whole entry
            s.Drain();
        }
        catch (EndOfStreamException e) { throw Bad($"entry '{entry.FullName}' ends before its {entry.Length} bytes", entry.FullName, e); }
        catch (InvalidDataException e) { throw Bad($"entry '{entry.FullName}' cannot be decompressed ({e.Message})", entry.FullName, e); }
    }

    byte[] ReadSmall(ZipArchiveEntry entry, long max)
    {
        if (entry.Length > max) throw Bad($"entry '{entry.FullName}' claims {entry.Length} bytes, more than the {max} allowed", entry.FullName);
        using var s = OpenChecked(entry);
        var bytes = new byte[entry.Length];
        try
        {
            s.ReadExactly(bytes);
            s.Drain();
        }
        catch (EndOfStreamException e) { throw Bad($"entry '{entry.FullName}' ends before its {entry.Length} bytes", entry.FullName, e); }
        catch (InvalidDataException e) { throw Bad($"entry '{entry.FullName}' cannot be decompressed ({e.Message})", entry.FullName, e); }
        return bytes;
    }

    CheckedStream OpenChecked(ZipArchiveEntry entry)
    {
        if (entry.Length > 0 && entry.Length > MaxEntryRatio * Math.Max(entry.CompressedLength, 1))
            throw Bad($"entry '{entry.FullName}' claims {entry.Length} bytes from {entry.CompressedLength} compressed, more than " +
                      "deflate can produce; refusing a forged size or zip bomb", entry.FullName);
        if (entry.Length > budget - read)
            throw Bad($"reading entry '{entry.FullName}' ({entry.Length} bytes) would take the archive past {budget} uncompressed bytes " +
                      $"({FileLength} bytes on disk × MaeLoadLimits.MaxCompressionRatio); refusing a possible zip bomb", entry.FullName);
        read += entry.Length;
        try { return new CheckedStream(entry.Open(), entry, this); }
        catch (InvalidDataException e) { throw Bad($"entry '{entry.FullName}' cannot be opened ({e.Message})", entry.FullName, e); }
    }

    MaeModelFileException Bad(string why, string? entry, Exception? inner = null)
        => new($"'{File}' is not a valid PyTorch weights file: {why}.", File, entry, inner);

    /// <summary>Refuses a central directory with more entries than <see cref="MaeLoadLimits.MaxArchiveEntries"/> before
    /// <see cref="ZipArchive"/> builds an object per entry. Reads the end-of-central-directory record (and its zip64
    /// form); a file without one is left to ZipArchive to reject.</summary>
    static void CheckDirectory(FileStream stream, string path, MaeLoadLimits limits)
    {
        long length = stream.Length;
        int tail = (int)Math.Min(length, 22 + 65535);
        var buf = new byte[tail];
        stream.Position = length - tail;
        stream.ReadExactly(buf);
        stream.Position = 0;
        for (int i = tail - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(i)) != 0x06054b50) continue;
            ulong entries = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan(i + 10));
            if (entries == 0xFFFF && i >= 20 && BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(i - 20)) == 0x07064b50)
            {
                long recordAt = (long)BinaryPrimitives.ReadUInt64LittleEndian(buf.AsSpan(i - 20 + 8));
                if (recordAt >= 0 && recordAt + 56 <= length)
                {
                    var record = new byte[56];
                    stream.Position = recordAt;
                    stream.ReadExactly(record);
                    stream.Position = 0;
                    if (BinaryPrimitives.ReadUInt32LittleEndian(record) == 0x06064b50)
                        entries = BinaryPrimitives.ReadUInt64LittleEndian(record.AsSpan(32));
                }
            }
            if (entries > (ulong)limits.MaxArchiveEntries)
                throw new MaeModelFileException(
                    $"'{path}' is not a valid PyTorch weights file: its zip directory lists {entries} entries, more than " +
                    $"MaeLoadLimits.MaxArchiveEntries ({limits.MaxArchiveEntries}).", path, null);
            return;
        }
    }

    public void Dispose()
    {
        zip.Dispose();
        stream.Dispose();
    }

    /// <summary>Reads an entry's bytes while computing their CRC-32; <see cref="Drain"/> checks that the entry holds
    /// exactly its declared size and that the CRC matches the zip directory's.</summary>
    sealed class CheckedStream(Stream inner, ZipArchiveEntry entry, TorchArchive archive) : Stream
    {
        readonly Crc32 crc = new();
        long position;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            long left = entry.Length - position;
            if (left <= 0) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, left)]);
            crc.Append(buffer[..n]);
            position += n;
            return n;
        }

        public void Drain()
        {
            if (position != entry.Length)
                throw archive.Bad($"entry '{entry.FullName}' ends after {position} of its {entry.Length} bytes", entry.FullName);
            Span<byte> one = stackalloc byte[1];
            if (inner.Read(one) != 0)
                throw archive.Bad($"entry '{entry.FullName}' holds more bytes than the {entry.Length} its header declares", entry.FullName);
            uint actual = crc.GetCurrentHashAsUInt32();
            if (actual != entry.Crc32)
                throw archive.Bad($"entry '{entry.FullName}' fails its CRC-32 check (stored {entry.Crc32:x8}, computed {actual:x8}); " +
                                  "the file was damaged or edited", entry.FullName);
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => entry.Length;
        public override long Position { get => position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
