using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>What a checkpoint says about the run that wrote it (stored as JSON at its start).</summary>
public sealed record MaeCheckpointHeader
{
    public int FormatVersion { get; init; } = MaePretrainCheckpoint.FormatVersion;
    /// <summary>Epochs finished when the checkpoint was written; training resumes at this (0-based) epoch.</summary>
    public int EpochsCompleted { get; init; }
    /// <summary>Batches processed so far (all epochs).</summary>
    public long GlobalStep { get; init; }
    /// <summary>AdamW steps taken so far.</summary>
    public long OptimizerSteps { get; init; }
    public long StepsPerEpoch { get; init; }
    public MaeConfig Config { get; init; } = new();
    public MaePretrainOptions Options { get; init; } = new();
    public DateTime SavedUtc { get; init; }
}

/// <summary>
/// Training checkpoints: model state, AdamW state (TorchSharp's own binary format, which round-trips bit for bit),
/// libtorch's CPU generator state, epoch / step counters, options, model config and the loss history.
/// Layout: ASCII magic <c>MAECKPT1</c>, payload, payload length (int64) and SHA-256 of the payload, so a truncated
/// or altered file is detected before anything is loaded. Files are written to a temporary file in the same folder,
/// flushed to disk and renamed over the target, so a crash leaves the previous checkpoint intact.
/// </summary>
public static class MaePretrainCheckpoint
{
    public const int FormatVersion = 1;
    public const string FilePrefix = "checkpoint-";
    public const string FileExtension = ".maeckpt";
    static readonly byte[] Magic = Encoding.ASCII.GetBytes("MAECKPT1");
    const int TrailerLength = 8 + 32;

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The file name for the checkpoint written after <paramref name="epochsCompleted"/> epochs.</summary>
    public static string PathFor(string directory, int epochsCompleted)
        => Path.Combine(directory, $"{FilePrefix}{epochsCompleted:D4}{FileExtension}");

    /// <summary>The checkpoint with the most completed epochs in <paramref name="directory"/>, or null if none.</summary>
    public static string? FindLatest(string directory)
    {
        if (!Directory.Exists(directory)) return null;
        string? best = null;
        int bestEpoch = -1;
        foreach (var f in Directory.EnumerateFiles(directory, FilePrefix + "*" + FileExtension))
        {
            var stem = Path.GetFileNameWithoutExtension(f)[FilePrefix.Length..];
            if (int.TryParse(stem, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int e) && e > bestEpoch)
            {
                bestEpoch = e;
                best = f;
            }
        }
        return best;
    }

    /// <summary>Deletes temporary files a killed writer left behind in <paramref name="directory"/>.</summary>
    internal static void DeleteStaleTemporaries(string directory)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var f in Directory.EnumerateFiles(directory, "." + FilePrefix + "*.tmp-*"))
            try { File.Delete(f); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes a checkpoint atomically (temp file in the same folder, flush to disk, rename over).</summary>
    internal static void Save(string path, MaeCheckpointHeader header, nn.Module model, optim.Optimizer optimizer,
        IReadOnlyList<float> stepLosses, IReadOnlyList<double> epochLosses)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Write(Magic);
                long payloadLength;
                byte[] hash;
                using (var hs = new HashingWriteStream(fs))
                {
                    using (var w = new BinaryWriter(hs, Encoding.UTF8, leaveOpen: true))
                    {
                        w.Write(JsonSerializer.Serialize(header, Json));
                        model.save(w);
                        if (optimizer is not OptimizerHelper helper)
                            throw new NotSupportedException($"Optimizer {optimizer.GetType().Name} cannot save its state.");
                        helper.save_state_dict(w);
                        using (var rng = torch.random.get_rng_state()) rng.Save(w);
                        w.Write(stepLosses.Count);
                        foreach (var l in stepLosses) w.Write(l);
                        w.Write(epochLosses.Count);
                        foreach (var l in epochLosses) w.Write(l);
                        w.Flush();
                    }
                    payloadLength = hs.Length;
                    hash = hs.GetHash();
                }
                Span<byte> len = stackalloc byte[8];
                BitConverter.TryWriteBytes(len, payloadLength);
                fs.Write(len);
                fs.Write(hash);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Reads and verifies a checkpoint's header (the whole file's checksum is checked first).</summary>
    public static MaeCheckpointHeader ReadHeader(string path)
    {
        using var r = MaeCheckpointReader.Open(path);
        return r.Header;
    }

    /// <summary>Builds the model the checkpoint holds (on the CPU) with its trained weights.</summary>
    public static MaskedAutoencoder LoadModel(string path)
    {
        using var r = MaeCheckpointReader.Open(path);
        var model = new MaskedAutoencoder(r.Header.Config);
        r.LoadModel(model);
        return model;
    }

    /// <summary>Checks magic, length and SHA-256; throws <see cref="InvalidDataException"/> naming the file otherwise.</summary>
    internal static long Verify(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint file not found: {path}", path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        long fileLength = fs.Length;
        if (fileLength < Magic.Length + TrailerLength)
            throw Corrupt(path, $"it is {fileLength} bytes long, shorter than the smallest possible checkpoint ({Magic.Length + TrailerLength} bytes); it was probably truncated");
        var magic = new byte[Magic.Length];
        fs.ReadExactly(magic);
        if (!magic.AsSpan().SequenceEqual(Magic))
            throw Corrupt(path, $"it does not start with the checkpoint signature 'MAECKPT1' (found '{Encoding.ASCII.GetString(magic)}'); it is not a Mae.MLNet checkpoint or it is damaged");
        long payloadLength = fileLength - Magic.Length - TrailerLength;
        fs.Seek(fileLength - TrailerLength, SeekOrigin.Begin);
        var trailer = new byte[TrailerLength];
        fs.ReadExactly(trailer);
        long recorded = BitConverter.ToInt64(trailer, 0);
        if (recorded != payloadLength)
            throw Corrupt(path, $"its payload should be {recorded} bytes but the file holds {payloadLength}; it was probably truncated or appended to");
        fs.Seek(Magic.Length, SeekOrigin.Begin);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[1 << 20];
        long left = payloadLength;
        while (left > 0)
        {
            int n = fs.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n <= 0) throw Corrupt(path, "it ended early while reading");
            sha.AppendData(buf, 0, n);
            left -= n;
        }
        if (!sha.GetHashAndReset().AsSpan().SequenceEqual(trailer.AsSpan(8)))
            throw Corrupt(path, "its SHA-256 checksum does not match its contents; the file is damaged");
        return payloadLength;
    }

    internal static InvalidDataException Corrupt(string path, string why, Exception? inner = null)
        => new($"Checkpoint '{path}' is corrupt: {why}. Delete it to resume from an earlier checkpoint, or start a fresh run.", inner);

    /// <summary>A write-only stream that hashes and counts what passes through.</summary>
    sealed class HashingWriteStream : Stream
    {
        readonly Stream _inner;
        readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long _length;
        public HashingWriteStream(Stream inner) => _inner = inner;
        public byte[] GetHash() => _sha.GetHashAndReset();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Flush() => _inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _sha.AppendData(buffer);
            _inner.Write(buffer);
            _length += buffer.Length;
        }
        protected override void Dispose(bool disposing)
        {
            if (disposing) _sha.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>Reads a verified checkpoint front to back: header, model, optimizer, generator state, history.</summary>
internal sealed class MaeCheckpointReader : IDisposable
{
    readonly FileStream _fs;
    readonly BinaryReader _r;
    readonly string _path;
    int _stage;

    public MaeCheckpointHeader Header { get; }

    MaeCheckpointReader(string path, FileStream fs)
    {
        _path = path;
        _fs = fs;
        _r = new BinaryReader(fs, Encoding.UTF8, leaveOpen: true);
        try
        {
            Header = JsonSerializer.Deserialize<MaeCheckpointHeader>(_r.ReadString(), MaePretrainCheckpoint.Json)
                ?? throw MaePretrainCheckpoint.Corrupt(path, "its header is empty");
        }
        catch (JsonException e) { throw MaePretrainCheckpoint.Corrupt(path, "its header is not valid JSON", e); }
        if (Header.FormatVersion != MaePretrainCheckpoint.FormatVersion)
            throw new InvalidDataException($"Checkpoint '{path}' has format version {Header.FormatVersion}; this build reads version {MaePretrainCheckpoint.FormatVersion}.");
    }

    public static MaeCheckpointReader Open(string path)
    {
        MaePretrainCheckpoint.Verify(path);
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        try
        {
            fs.Seek(8, SeekOrigin.Begin);
            return new MaeCheckpointReader(path, fs);
        }
        catch { fs.Dispose(); throw; }
    }

    void Stage(int expected, string what)
    {
        if (_stage != expected) throw new InvalidOperationException($"Checkpoint sections must be read in order; {what} was read out of order.");
        _stage++;
    }

    public void LoadModel(nn.Module model)
    {
        Stage(0, "the model");
        try { model.load(_r, strict: true); }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"Checkpoint '{_path}' does not fit this model: {e.Message}", e);
        }
    }

    public void LoadOptimizer(optim.Optimizer optimizer)
    {
        Stage(1, "the optimizer");
        if (optimizer is not OptimizerHelper helper) throw new NotSupportedException($"Optimizer {optimizer.GetType().Name} cannot load state.");
        try { helper.load_state_dict(_r); }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"Checkpoint '{_path}': the optimizer state does not fit this model's parameter groups: {e.Message}", e);
        }
    }

    /// <summary>The CPU generator state (a uint8 tensor owned by the caller).</summary>
    public Tensor ReadRngState()
    {
        Stage(2, "the generator state");
        return TensorExtensionMethods.Load(_r);
    }

    public (List<float> stepLosses, List<double> epochLosses) ReadHistory()
    {
        Stage(3, "the loss history");
        int n = _r.ReadInt32();
        var steps = new List<float>(n);
        for (int i = 0; i < n; i++) steps.Add(_r.ReadSingle());
        int m = _r.ReadInt32();
        var epochs = new List<double>(m);
        for (int i = 0; i < m; i++) epochs.Add(_r.ReadDouble());
        return (steps, epochs);
    }

    public void Dispose()
    {
        _r.Dispose();
        _fs.Dispose();
    }
}
