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

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The file name for the checkpoint written after <paramref name="epochsCompleted"/> epochs.</summary>
    public static string PathFor(string directory, int epochsCompleted) => Container.PathFor(directory, epochsCompleted);

    /// <summary>The checkpoint with the most completed epochs in <paramref name="directory"/>, or null if none.</summary>
    public static string? FindLatest(string directory) => Container.FindLatest(directory);

    /// <summary>Deletes temporary files a killed writer left behind in <paramref name="directory"/>.</summary>
    internal static void DeleteStaleTemporaries(string directory) => Container.DeleteStaleTemporaries(directory);

    internal static readonly CheckpointFile Container = new("MAECKPT1", FilePrefix, FileExtension);

    /// <summary>Writes a checkpoint atomically (temp file in the same folder, flush to disk, rename over).</summary>
    internal static void Save(string path, MaeCheckpointHeader header, nn.Module model, optim.Optimizer optimizer,
        IReadOnlyList<float> stepLosses, IReadOnlyList<double> epochLosses)
        => Container.Save(path, w =>
        {
            w.Write(JsonSerializer.Serialize(header, Json));
            CheckpointFile.WriteTrainingState(w, model, optimizer);
            w.Write(stepLosses.Count);
            foreach (var l in stepLosses) w.Write(l);
            w.Write(epochLosses.Count);
            foreach (var l in epochLosses) w.Write(l);
        });

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
    internal static long Verify(string path) => Container.Verify(path);

    internal static InvalidDataException Corrupt(string path, string why, Exception? inner = null) => CheckpointFile.Corrupt(path, why, inner);
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
        var fs = MaePretrainCheckpoint.Container.OpenPayload(path);
        try { return new MaeCheckpointReader(path, fs); }
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
        CheckpointFile.LoadModel(_r, _path, model);
    }

    public void LoadOptimizer(optim.Optimizer optimizer)
    {
        Stage(1, "the optimizer");
        CheckpointFile.LoadOptimizer(_r, _path, optimizer);
    }

    /// <summary>The CPU generator state (a uint8 tensor owned by the caller).</summary>
    public Tensor ReadRngState()
    {
        Stage(2, "the generator state");
        return CheckpointFile.ReadRngState(_r);
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
