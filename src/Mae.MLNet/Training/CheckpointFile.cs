using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The container shared by the pre-training and fine-tuning checkpoints: ASCII magic (8 bytes), payload, payload
/// length (int64) and SHA-256 of the payload, so a truncated or altered file is detected before anything is loaded.
/// Files are written to a temporary file in the same folder, flushed to disk and renamed over the target, so a crash
/// leaves the previous checkpoint intact. Names are <c>{prefix}NNNN{extension}</c> by completed epochs.
/// </summary>
internal sealed class CheckpointFile
{
    const int TrailerLength = 8 + 32;
    readonly byte[] magic;
    readonly string prefix, extension;

    public CheckpointFile(string magic, string prefix, string extension)
    {
        this.magic = Encoding.ASCII.GetBytes(magic);
        if (this.magic.Length != 8) throw new ArgumentException("The magic must be 8 ASCII characters.", nameof(magic));
        this.prefix = prefix;
        this.extension = extension;
    }

    public int MagicLength => magic.Length;

    public string PathFor(string directory, int epochsCompleted)
        => Path.Combine(directory, $"{prefix}{epochsCompleted:D4}{extension}");

    public string? FindLatest(string directory)
    {
        if (!Directory.Exists(directory)) return null;
        string? best = null;
        int bestEpoch = -1;
        foreach (var f in Directory.EnumerateFiles(directory, prefix + "*" + extension))
        {
            var stem = Path.GetFileNameWithoutExtension(f)[prefix.Length..];
            if (int.TryParse(stem, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int e) && e > bestEpoch)
            {
                bestEpoch = e;
                best = f;
            }
        }
        return best;
    }

    public void DeleteStaleTemporaries(string directory)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var f in Directory.EnumerateFiles(directory, "." + prefix + "*.tmp-*"))
            try { File.Delete(f); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes magic, the payload <paramref name="write"/> produces, its length and hash, atomically.</summary>
    public void Save(string path, Action<BinaryWriter> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Write(magic);
                long payloadLength;
                byte[] hash;
                using (var hs = new HashingWriteStream(fs))
                {
                    using (var w = new BinaryWriter(hs, Encoding.UTF8, leaveOpen: true))
                    {
                        write(w);
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

    /// <summary>Verifies the file and returns a stream positioned at the start of its payload.</summary>
    public FileStream OpenPayload(string path)
    {
        Verify(path);
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        fs.Seek(magic.Length, SeekOrigin.Begin);
        return fs;
    }

    /// <summary>Checks magic, length and SHA-256; throws <see cref="InvalidDataException"/> naming the file otherwise.</summary>
    public long Verify(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint file not found: {path}", path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        long fileLength = fs.Length;
        string name = Encoding.ASCII.GetString(magic);
        if (fileLength < magic.Length + TrailerLength)
            throw Corrupt(path, $"it is {fileLength} bytes long, shorter than the smallest possible checkpoint ({magic.Length + TrailerLength} bytes); it was probably truncated");
        var found = new byte[magic.Length];
        fs.ReadExactly(found);
        if (!found.AsSpan().SequenceEqual(magic))
            throw Corrupt(path, $"it does not start with the checkpoint signature '{name}' (found '{Encoding.ASCII.GetString(found)}'); it is not a Mae.MLNet checkpoint of this kind or it is damaged");
        long payloadLength = fileLength - magic.Length - TrailerLength;
        fs.Seek(fileLength - TrailerLength, SeekOrigin.Begin);
        var trailer = new byte[TrailerLength];
        fs.ReadExactly(trailer);
        long recorded = BitConverter.ToInt64(trailer, 0);
        if (recorded != payloadLength)
            throw Corrupt(path, $"its payload should be {recorded} bytes but the file holds {payloadLength}; it was probably truncated or appended to");
        fs.Seek(magic.Length, SeekOrigin.Begin);
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

    public static InvalidDataException Corrupt(string path, string why, Exception? inner = null)
        => new($"Checkpoint '{path}' is corrupt: {why}. Delete it to resume from an earlier checkpoint, or start a fresh run.", inner);

    /// <summary>Model weights, AdamW state (TorchSharp's own format, exact) and libtorch's CPU generator state.</summary>
    public static void WriteTrainingState(BinaryWriter w, nn.Module model, optim.Optimizer optimizer)
    {
        model.save(w);
        if (optimizer is not OptimizerHelper helper)
            throw new NotSupportedException($"Optimizer {optimizer.GetType().Name} cannot save its state.");
        helper.save_state_dict(w);
        using var rng = torch.random.get_rng_state();
        rng.Save(w);
    }

    public static void LoadModel(BinaryReader r, string path, nn.Module model)
    {
        try { model.load(r, strict: true); }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"Checkpoint '{path}' does not fit this model: {e.Message}", e);
        }
    }

    public static void LoadOptimizer(BinaryReader r, string path, optim.Optimizer optimizer)
    {
        if (optimizer is not OptimizerHelper helper) throw new NotSupportedException($"Optimizer {optimizer.GetType().Name} cannot load state.");
        try { helper.load_state_dict(r); }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"Checkpoint '{path}': the optimizer state does not fit this model's parameter groups: {e.Message}", e);
        }
    }

    /// <summary>The CPU generator state (a uint8 tensor owned by the caller).</summary>
    public static Tensor ReadRngState(BinaryReader r) => TensorExtensionMethods.Load(r);

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
