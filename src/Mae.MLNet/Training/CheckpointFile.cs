using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The container shared by the pre-training and fine-tuning checkpoints: ASCII magic (8 bytes), payload, payload
/// length (int64) and SHA-256 of the payload, so a truncated or altered file is detected before anything is loaded.
/// Files are written to a temporary file in the same folder, flushed to disk and renamed over the target, so a crash
/// leaves the previous checkpoint intact. Names are <c>{prefix}NNNN{extension}</c> by completed epochs
/// (<c>{prefix}NNNN-SSSSSS{extension}</c> for a run stopped SSSSSS steps into the next epoch).
/// <para>A checksum proves only that the file is what some writer wrote, so nothing read from the payload is trusted
/// either: <see cref="OpenPayload"/> also holds the model config in the payload's JSON header against the weights
/// that follow it (TorchSharp's <c>Module.save</c> section: names, dtypes, shapes) before a caller builds a model from
/// that config, and every count or tensor read later is bounded by the bytes left in the payload. Every failure is a
/// <see cref="MaeTrainingCheckpointException"/> naming the file.</para>
/// </summary>
internal sealed class CheckpointFile
{
    const int TrailerLength = 8 + 32;
    /// <summary>Largest JSON header accepted (real ones are a few KB).</summary>
    const int MaxHeaderBytes = 1 << 20;
    readonly byte[] magic;
    readonly string prefix, extension;
    readonly bool classifier;

    /// <summary>A kind of checkpoint: its 8-character magic, file names <c>{prefix}NNNN{extension}</c>, and the model it
    /// holds, which its reader builds — a classifier (encoder + head; the header must say <c>NumClasses</c>) or a full
    /// MAE (encoder + decoder). It is the file's kind, not something its header may choose, that decides which
    /// weights the header's config is held against.</summary>
    public CheckpointFile(string magic, string prefix, string extension, bool classifier)
    {
        this.magic = Encoding.ASCII.GetBytes(magic);
        if (this.magic.Length != 8) throw new ArgumentException("The magic must be 8 ASCII characters.", nameof(magic));
        this.prefix = prefix;
        this.extension = extension;
        this.classifier = classifier;
    }

    public string PathFor(string directory, int epochsCompleted)
        => Path.Combine(directory, $"{prefix}{epochsCompleted:D4}{extension}");

    /// <summary>A run stopped inside an epoch (Ctrl+C, a cancelled token): <c>{prefix}NNNN-SSSSSS{extension}</c>, epochs
    /// completed and steps done in the next one; it sorts after NNNN's end-of-epoch file and before NNNN+1's.</summary>
    public string PathFor(string directory, int epochsCompleted, long stepsIntoEpoch)
        => stepsIntoEpoch == 0 ? PathFor(directory, epochsCompleted)
            : Path.Combine(directory, $"{prefix}{epochsCompleted:D4}-{stepsIntoEpoch:D6}{extension}");

    public string? FindLatest(string directory)
    {
        if (!Directory.Exists(directory)) return null;
        string? best = null;
        (int Epoch, long Step) bestAt = (-1, -1);
        var number = System.Globalization.NumberStyles.None;
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        foreach (var f in Directory.EnumerateFiles(directory, prefix + "*" + extension))
        {
            var stem = Path.GetFileNameWithoutExtension(f)[prefix.Length..];
            int dash = stem.IndexOf('-');
            long step = 0;
            if (int.TryParse(dash < 0 ? stem : stem[..dash], number, invariant, out int e)
                && (dash < 0 || long.TryParse(stem[(dash + 1)..], number, invariant, out step))
                && (e, step).CompareTo(bestAt) > 0)
            {
                bestAt = (e, step);
                best = f;
            }
        }
        return best;
    }

    /// <summary>Deletes the temporaries a killed writer left. Call only while holding the folder's
    /// <see cref="MaeRunFolderLock"/>: then no live run is writing one.</summary>
    public void DeleteStaleTemporaries(string directory)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var f in Directory.EnumerateFiles(directory, AtomicFile.TemporaryPattern(prefix)))
            try { File.Delete(f); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes magic, the payload <paramref name="write"/> produces, its length and hash, atomically.</summary>
    public void Save(string path, Action<BinaryWriter> write) => AtomicFile.Write(path, fs =>
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
    }, bufferSize: 1 << 20);

    /// <summary>Verifies the file (signature, length, SHA-256), checks that the model config in its header fits the
    /// weights it holds (<see cref="InspectPayload"/>), and returns a stream positioned at the start of its payload.</summary>
    public FileStream OpenPayload(string path)
    {
        var fs = Open(path);
        try
        {
            long payloadLength = Verify(path, fs);
            InspectPayload(path, fs, payloadLength);
            CheckUnchanged(fs);
            fs.Seek(magic.Length, SeekOrigin.Begin);
            return fs;
        }
        catch { fs.Dispose(); throw; }
    }

    /// <summary>Refuses a checkpoint that changed since it was opened (<see cref="ReadOnlyFile.CheckUnchanged"/>): its
    /// SHA-256 was checked over the bytes of the version opened, and a rewrite in place would hand the reader others.</summary>
    internal static void CheckUnchanged(FileStream fs)
    {
        if (fs is not ReadOnlyFile file) return;
        try { file.CheckUnchanged(); }
        catch (FileChangedException e)
        {
            throw new MaeTrainingCheckpointException($"Checkpoint '{file.FilePath}' changed while it was read ({e.Message}); nothing read from it is used.", file.FilePath, e);
        }
    }

    /// <summary>Opens a checkpoint for reading: a regular file only (a FIFO or device named like a checkpoint is
    /// refused, never waited on). The file is verified and read through this one handle.</summary>
    static ReadOnlyFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint file not found: {path}", path);
        try { return RegularFile.OpenRead(path, 1 << 20); }
        catch (NotRegularFileException e)
        {
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}' is {e.Kind}, not a regular file; only regular files are read.", path, e);
        }
    }

    /// <summary>
    /// Reads the payload's JSON header, walks the <c>Module.save</c> section after it (names and shapes only, every size
    /// bounded by the payload) and refuses a header whose model config does not describe those weights — before anyone
    /// builds a model from it. Every header field that sizes the model the reader builds is checked: the
    /// <c>Config</c> must be there (a header without one would build the default ViT-L), and a classifier file's
    /// <c>NumClasses</c> too; the file's kind says whether the decoder (MAE) or the head (classifier) is checked.
    /// Duplicate JSON properties are refused (a reader taking another copy than the check would be a differential).
    /// A header from a newer format is left to the reader, which refuses it by its version.
    /// </summary>
    void InspectPayload(string path, FileStream fs, long payloadLength)
    {
        long end = magic.Length + payloadLength;
        fs.Seek(magic.Length, SeekOrigin.Begin);
        using var r = new BinaryReader(fs, Encoding.UTF8, leaveOpen: true);
        byte[] headerBytes;
        try
        {
            int headerLength = r.Read7BitEncodedInt();
            if (headerLength < 0 || headerLength > Math.Min(MaxHeaderBytes, end - fs.Position))
                throw Invalid(path, $"its header claims {headerLength} bytes (at most {Math.Min(MaxHeaderBytes, end - fs.Position)} possible)");
            headerBytes = r.ReadBytes(headerLength);
        }
        catch (FormatException e) { throw Invalid(path, "its header length is malformed", e); }
        catch (EndOfStreamException e) { throw Invalid(path, "it ends inside its header", e); }

        MaeConfig? config;
        ConvNextV2Config? convNext = null;
        int? numClasses = null;
        try
        {
            using var doc = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false });
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Invalid(path, "its header is not a JSON object");
            // A layout from a newer build is not ours to walk: the reader refuses it by its version, naming it.
            if (doc.RootElement.TryGetProperty("FormatVersion", out var v) && v.ValueKind == JsonValueKind.Number
                && (!v.TryGetInt32(out int version) || version > MaeTrainingCheckpoint.FormatVersion)) return;
            if (!doc.RootElement.TryGetProperty("Config", out var c) || c.ValueKind != JsonValueKind.Object)
                throw Invalid(path, "its header has no model Config, so the model it holds cannot be sized from it");
            config = c.Deserialize<MaeConfig>() ?? throw Invalid(path, "its header's Config is null");
            if (doc.RootElement.TryGetProperty("ConvNextConfig", out var cn) && cn.ValueKind != JsonValueKind.Null)
                convNext = cn.ValueKind == JsonValueKind.Object ? cn.Deserialize<ConvNextV2Config>() : throw Invalid(path, "its header's ConvNextConfig is not an object");
            if (classifier)
                numClasses = doc.RootElement.TryGetProperty("NumClasses", out var k) && k.ValueKind == JsonValueKind.Number && k.TryGetInt32(out int n) && n >= 1 ? n
                    : throw Invalid(path, $"its header's NumClasses is {(doc.RootElement.TryGetProperty("NumClasses", out var raw) ? raw.GetRawText() : "missing")}, not a positive integer");
        }
        catch (JsonException e) { throw Invalid(path, $"its header is not valid JSON ({e.Message})", e); }

        var shapes = ReadStateDictShapes(r, path, end);
        if (convNext is not null)
        {
            if (classifier) CheckConvNextClassifierAgainstTensors(convNext, numClasses!.Value, shapes, path);
            else CheckFcmaeAgainstTensors(convNext, shapes, path);
            return;
        }
        try
        {
            ConfigInference.CheckAgainstTensors(config, shapes, path, MaeLoadLimits.Default, decoder: !classifier, numClasses);
        }
        catch (MaeModelFileException e)
        {
            throw Invalid(path, $"the model its header describes is not the one whose weights it holds, so no model is built ({e.Message})", e);
        }
    }

    /// <summary>An FCMAE checkpoint: the architecture its tensors hold (read from their shapes, bounded by the file)
    /// must be the one its header describes, decoder included, before any model is built from the header.</summary>
    static void CheckFcmaeAgainstTensors(ConvNextV2Config header, Dictionary<string, long[]> shapes, string path)
    {
        try
        {
            header.Validate();
            var (held, _) = ConvNextWeightNames.Infer(shapes, path, "encoder.");
            bool decoderFits = shapes.TryGetValue("proj.weight", out var proj) && proj.SequenceEqual(new long[] { header.DecoderEmbedDim, header.NumFeatures, 1, 1 })
                && shapes.TryGetValue("pred.weight", out var pred) && pred.SequenceEqual(new long[] { header.PatchDim, header.DecoderEmbedDim, 1, 1 })
                && shapes.Keys.Where(k => k.StartsWith("decoder.", StringComparison.Ordinal)).Select(k => k.Split('.')[1]).Distinct().Count() == header.DecoderDepth;
            if (!decoderFits || !held.Dims.SequenceEqual(header.Dims) || !held.Depths.SequenceEqual(header.Depths) || held.InChannels != header.InChannels
                || held.StemPatchSize != header.StemPatchSize || held.MlpRatio != header.MlpRatio || held.ConvMlp != header.ConvMlp)
                throw Invalid(path, $"the model its header describes ({header}) is not the one whose weights it holds ({held}{(decoderFits ? "" : "; the decoder differs")}), so no model is built");
        }
        catch (ArgumentException e) { throw Invalid(path, $"its header's ConvNextConfig is inconsistent ({e.Message})", e); }
        catch (MaeModelFileException e) { throw Invalid(path, $"the model its header describes is not the one whose weights it holds, so no model is built ({e.Message})", e); }
    }

    /// <summary>A fine-tuned ConvNeXt V2: the architecture and head its tensors hold must be the header's.</summary>
    static void CheckConvNextClassifierAgainstTensors(ConvNextV2Config header, int numClasses, Dictionary<string, long[]> shapes, string path)
    {
        try
        {
            header.Validate();
            var (held, classes) = ConvNextWeightNames.Infer(shapes, path);
            if (classes != numClasses || !held.Dims.SequenceEqual(header.Dims) || !held.Depths.SequenceEqual(header.Depths) || held.InChannels != header.InChannels
                || held.StemPatchSize != header.StemPatchSize || held.MlpRatio != header.MlpRatio || held.ConvMlp != header.ConvMlp)
                throw Invalid(path, $"the classifier its header describes ({header}, {numClasses} classes) is not the one whose weights it holds ({held}, {classes} classes), so no model is built");
        }
        catch (ArgumentException e) { throw Invalid(path, $"its header's ConvNextConfig is inconsistent ({e.Message})", e); }
        catch (MaeModelFileException e) { throw Invalid(path, $"the model its header describes is not the one whose weights it holds, so no model is built ({e.Message})", e); }
    }

    /// <summary>Names and shapes of a TorchSharp <c>Module.save</c> section, skipping the values; every count and
    /// size is checked against the bytes left before <paramref name="end"/>.</summary>
    static Dictionary<string, long[]> ReadStateDictShapes(BinaryReader r, string path, long end)
    {
        var fs = r.BaseStream;
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        long count = Leb128(r, path, end, "the weights' entry count");
        if (count > (end - fs.Position) / 4) throw Invalid(path, $"it claims {count} weight tensors, more than its remaining bytes can hold");
        for (long i = 0; i < count; i++)
        {
            string name;
            try
            {
                int length = r.Read7BitEncodedInt();
                if (length < 0 || length > Math.Min(4096, end - fs.Position)) throw Invalid(path, $"weight name {i} claims {length} bytes");
                name = new UTF8Encoding(false, true).GetString(r.ReadBytes(length));
            }
            catch (Exception e) when (e is FormatException or DecoderFallbackException or EndOfStreamException)
            {
                throw Invalid(path, $"weight name {i} is malformed", e);
            }
            var (_, shape, bytes) = TensorHeader(r, path, end, $"weight '{name}'");
            if (!shapes.TryAdd(name, shape)) throw Invalid(path, $"weight '{name}' appears twice");
            fs.Seek(bytes, SeekOrigin.Current);
        }
        return shapes;
    }

    /// <summary>TorchSharp's tensor header (LEB128 dtype, rank, dims), checked: a known dtype, rank ≤ 32, no overflow,
    /// and the values' bytes within what is left before <paramref name="end"/>.</summary>
    static (ScalarType DType, long[] Shape, long Bytes) TensorHeader(BinaryReader r, string path, long end, string what)
    {
        long code = Leb128(r, path, end, what);
        int size = code switch
        {
            (long)ScalarType.Byte or (long)ScalarType.Int8 or (long)ScalarType.Bool => 1,
            (long)ScalarType.Int16 or (long)ScalarType.Float16 or (long)ScalarType.BFloat16 => 2,
            (long)ScalarType.Int32 or (long)ScalarType.Float32 => 4,
            (long)ScalarType.Int64 or (long)ScalarType.Float64 or (long)ScalarType.ComplexFloat32 => 8,
            (long)ScalarType.ComplexFloat64 => 16,
            _ => throw Invalid(path, $"{what} has an unknown dtype code {code}"),
        };
        long rank = Leb128(r, path, end, what);
        if (rank > 32) throw Invalid(path, $"{what} claims {rank} dimensions");
        var shape = new long[rank];
        long numel = 1;
        for (int d = 0; d < rank; d++)
        {
            shape[d] = Leb128(r, path, end, what);
            numel = shape[d] == 0 ? 0 : numel > long.MaxValue / 16 / shape[d] ? throw Invalid(path, $"{what}'s element count overflows") : numel * shape[d];
        }
        long bytes = numel * size;
        long left = end - r.BaseStream.Position;
        if (bytes > left)
            throw Invalid(path, $"{what} ({(ScalarType)code} [{string.Join(", ", shape)}]) needs {bytes} bytes but only {left} are left in the file");
        return ((ScalarType)code, shape, bytes);
    }

    static long Leb128(BinaryReader r, string path, long end, string what)
    {
        long result = 0;
        for (int shift = 0; ; shift += 7)
        {
            if (shift > 56 || r.BaseStream.Position >= end) throw Invalid(path, $"{what} has a malformed or truncated size field");
            byte b = r.ReadByte();
            result |= (long)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }

    /// <summary>Bytes left in the payload of the checkpoint <paramref name="r"/> reads (its stream is the file).</summary>
    static long PayloadLeft(BinaryReader r) => r.BaseStream.Length - TrailerLength - r.BaseStream.Position;

    static string PathOf(BinaryReader r) => (r.BaseStream as FileStream)?.Name ?? "(stream)";

    /// <summary>A tensor in TorchSharp's format (as <c>Tensor.Save</c> writes it), allocated only after its size is
    /// checked against <paramref name="maxBytes"/> and the bytes left in the payload. Use instead of
    /// <c>TensorExtensionMethods.Load</c>, which allocates whatever shape the file claims.</summary>
    public static Tensor ReadTensor(BinaryReader r, string what, long maxBytes)
    {
        string path = PathOf(r);
        long end = r.BaseStream.Position + PayloadLeft(r);
        var (dtype, shape, bytes) = TensorHeader(r, path, end, what);
        if (bytes > maxBytes) throw Invalid(path, $"{what} claims {bytes} bytes, more than the {maxBytes} it can hold");
        var t = torch.empty(shape, dtype);
        try
        {
            t.ReadBytesFromStream(r.BaseStream, 1 << 16);
            return t;
        }
        catch (EndOfStreamException e)
        {
            t.Dispose();
            throw Invalid(path, $"it ends inside {what}", e);
        }
    }

    /// <summary>An int32 element count followed by that many elements of <paramref name="elementSize"/> bytes, checked
    /// against the bytes left in the payload before the caller allocates for them.</summary>
    public static int ReadCount(BinaryReader r, int elementSize, string what)
    {
        string path = PathOf(r);
        if (PayloadLeft(r) < 4) throw Invalid(path, $"it ends before {what}");
        int n = r.ReadInt32();
        long left = PayloadLeft(r);
        if (n < 0 || (long)n * elementSize > left)
            throw Invalid(path, $"{what} claims {n} entries of {elementSize} bytes but only {left} bytes are left");
        return n;
    }

    /// <summary>Checks magic, length and SHA-256; throws <see cref="MaeTrainingCheckpointException"/> naming the file otherwise.</summary>
    public long Verify(string path)
    {
        using var fs = Open(path);
        return Verify(path, fs);
    }

    long Verify(string path, FileStream fs)
    {
        long fileLength = fs.Length;
        string name = Encoding.ASCII.GetString(magic);
        if (fileLength < magic.Length + TrailerLength)
            throw Invalid(path, $"it is {fileLength} bytes long, shorter than the smallest possible checkpoint ({magic.Length + TrailerLength} bytes); it was probably truncated");
        var found = new byte[magic.Length];
        fs.ReadExactly(found);
        if (!found.AsSpan().SequenceEqual(magic))
            throw Invalid(path, $"it does not start with the checkpoint signature '{name}' (found '{Encoding.ASCII.GetString(found)}'); it is not a Mae.MLNet checkpoint of this kind or it is damaged");
        long payloadLength = fileLength - magic.Length - TrailerLength;
        fs.Seek(fileLength - TrailerLength, SeekOrigin.Begin);
        var trailer = new byte[TrailerLength];
        fs.ReadExactly(trailer);
        long recorded = BitConverter.ToInt64(trailer, 0);
        // A truncated (or appended-to) file has no trailer at its end: its last 40 bytes are then payload (or appended)
        // bytes, and the number they hold is no size at all, so it is not quoted.
        if (recorded != payloadLength)
            throw Invalid(path, $"it does not end with the trailer every complete checkpoint ends with (its payload length, {payloadLength} " +
                                "for a file of this size, then a SHA-256); it was probably truncated while it was copied or written, or bytes were appended to it");
        fs.Seek(magic.Length, SeekOrigin.Begin);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[1 << 20];
        long left = payloadLength;
        while (left > 0)
        {
            int n = fs.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n <= 0) throw Invalid(path, "it ended early while reading");
            sha.AppendData(buf, 0, n);
            left -= n;
        }
        if (!sha.GetHashAndReset().AsSpan().SequenceEqual(trailer.AsSpan(8)))
            throw Invalid(path, "its SHA-256 checksum does not match its contents; the file is damaged");
        return payloadLength;
    }

    /// <summary>The failure of a checkpoint that is damaged, truncated or forged, naming the file.</summary>
    public static MaeTrainingCheckpointException Invalid(string path, string why, Exception? inner = null)
        => new($"Checkpoint '{path}' is corrupt: {why}. Delete it to resume from an earlier checkpoint, or start a fresh run.", path, inner);

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

    /// <summary>Loads the model section into <paramref name="model"/> (names, dtypes and shapes must match exactly, so
    /// nothing is allocated beyond the model itself).</summary>
    public static void LoadModel(BinaryReader r, string path, nn.Module model)
    {
        try { model.load(r, strict: true); }
        catch (Exception e) when (e is ArgumentException or EndOfStreamException or FormatException or NotImplementedException)
        {
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}' does not fit this model: {e.Message}", path, e);
        }
    }

    public static void LoadOptimizer(BinaryReader r, string path, optim.Optimizer optimizer)
    {
        if (optimizer is not OptimizerHelper helper) throw new NotSupportedException($"Optimizer {optimizer.GetType().Name} cannot load state.");
        try { helper.load_state_dict(r); }
        catch (Exception e) when (e is ArgumentException or EndOfStreamException or FormatException or NotImplementedException)
        {
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}': the optimizer state does not fit this model's parameter groups: {e.Message}", path, e);
        }
    }

    /// <summary>libtorch's CPU generator state is a uint8 tensor of a few KB (mt19937: 5 056 bytes).</summary>
    const long MaxRngStateBytes = 1 << 20;

    /// <summary>The CPU generator state (a uint8 tensor owned by the caller), its size checked before allocation.</summary>
    public static Tensor ReadRngState(BinaryReader r)
    {
        var t = ReadTensor(r, "the generator state", MaxRngStateBytes);
        if (t.dtype != ScalarType.Byte || t.dim() != 1)
        {
            var found = $"{t.dtype} [{string.Join(", ", t.shape)}]";
            t.Dispose();
            throw Invalid(PathOf(r), $"its generator state is {found}, not a 1-D uint8 tensor");
        }
        return t;
    }

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
