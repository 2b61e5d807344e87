using System.Text;
using System.Text.Json;
using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>What every training checkpoint says about the run that wrote it (stored as JSON at its start); pre-training's
/// <see cref="Pretraining.MaePretrainCheckpointHeader"/> and fine-tuning's <c>MaeFineTuneCheckpointHeader</c> add their options.</summary>
internal abstract record MaeTrainingCheckpointHeader
{
    /// <summary>2: the optimizer state is the flat AdamW's (format 1, TorchSharp's per-parameter AdamW, still reads).</summary>
    public int FormatVersion { get; init; } = MaeTrainingCheckpoint.FormatVersion;
    /// <summary>Epochs finished when the checkpoint was written; training resumes at this (0-based) epoch (inside it
    /// when <see cref="GlobalStep"/> is not a whole number of epochs: a stop at a step boundary).</summary>
    public int EpochsCompleted { get; init; }
    /// <summary>Batches processed so far (all epochs).</summary>
    public long GlobalStep { get; init; }
    /// <summary>AdamW steps taken so far.</summary>
    public long OptimizerSteps { get; init; }
    public long StepsPerEpoch { get; init; }
    public MaeConfig Config { get; init; } = new();
    /// <summary>An FCMAE pre-training run's architecture (null for the ViT MAE, whose <see cref="Config"/> it is).</summary>
    public ConvNextV2Config? ConvNextConfig { get; init; }
    public DateTime SavedUtc { get; init; }
    /// <summary>A time-boxed run's schedule as last re-fitted (null otherwise: the options' epochs and warm-up are the
    /// schedule); a resume continues it.</summary>
    public MaeLrPlan? Schedule { get; init; }
}

/// <summary>
/// The one checkpoint layout of pre-training and fine-tuning, inside <see cref="CheckpointFile"/>'s container (magic,
/// SHA-256 trailer, atomic rename): JSON header, model state, optimizer state, libtorch's CPU generator state, step
/// losses, epoch losses, then the task's extras. Format 2 stores the optimizer as <see cref="MaeFlatAdamW"/>'s flat
/// moments; format 1 (before the flat buffer) stored TorchSharp's per-parameter AdamW state — its weights and header
/// read as before, and resuming from it converts that state (<see cref="MaeTrainingCheckpointReader.LoadOptimizer"/>).
/// </summary>
internal sealed class MaeTrainingCheckpoint
{
    public const int FormatVersion = 2;
    public const int OldestReadableVersion = 1;

    /// <summary>How every training checkpoint's header is written as JSON (enums by name).</summary>
    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    public CheckpointFile Container { get; }
    readonly Func<string, MaeTrainingCheckpointHeader?> parseHeader;

    public MaeTrainingCheckpoint(CheckpointFile container, Func<string, MaeTrainingCheckpointHeader?> parseHeader)
    {
        Container = container;
        this.parseHeader = parseHeader;
    }

    public void Save(string path, MaeTrainingCheckpointHeader header, nn.Module model, MaeFlatAdamW optimizer,
        IReadOnlyList<float> stepLosses, IReadOnlyList<double> epochLosses, Action<BinaryWriter> writeExtras)
        => Container.Save(path, w =>
        {
            w.Write(JsonSerializer.Serialize(header, header.GetType(), Json));
            model.save(w);
            optimizer.Save(w);
            using (var rng = torch.random.get_rng_state()) rng.Save(w);
            w.Write(stepLosses.Count);
            foreach (var l in stepLosses) w.Write(l);
            w.Write(epochLosses.Count);
            foreach (var l in epochLosses) w.Write(l);
            writeExtras(w);
        });

    public MaeTrainingCheckpointReader Open(string path)
    {
        var fs = Container.OpenPayload(path);
        try { return new MaeTrainingCheckpointReader(path, fs, parseHeader); }
        catch { fs.Dispose(); throw; }
    }
}

/// <summary>Reads a verified checkpoint front to back: header, model, optimizer, generator state, history, extras.</summary>
internal sealed class MaeTrainingCheckpointReader : IDisposable
{
    readonly FileStream fs;
    readonly BinaryReader r;
    int stage;

    public string Path { get; }
    public MaeTrainingCheckpointHeader Header { get; }
    public int FormatVersion => Header.FormatVersion;

    internal MaeTrainingCheckpointReader(string path, FileStream fs, Func<string, MaeTrainingCheckpointHeader?> parseHeader)
    {
        Path = path;
        this.fs = fs;
        r = new BinaryReader(fs, Encoding.UTF8, leaveOpen: true);
        try
        {
            Header = parseHeader(r.ReadString()) ?? throw CheckpointFile.Invalid(path, "its header is empty");
        }
        catch (JsonException e) { throw CheckpointFile.Invalid(path, "its header is not valid JSON", e); }
        if (Header.FormatVersion < MaeTrainingCheckpoint.OldestReadableVersion || Header.FormatVersion > MaeTrainingCheckpoint.FormatVersion)
            throw new MaeTrainingCheckpointException(
                $"Checkpoint '{path}' has format version {Header.FormatVersion}; this build reads versions {MaeTrainingCheckpoint.OldestReadableVersion} to {MaeTrainingCheckpoint.FormatVersion}.", path, null);
    }

    void Stage(int expected, string what)
    {
        if (stage != expected) throw new InvalidOperationException($"Checkpoint sections must be read in order; {what} was read out of order.");
        stage++;
    }

    public BinaryReader Reader => r;

    public void LoadModel(nn.Module model)
    {
        Stage(0, "the model");
        CheckpointFile.LoadModel(r, Path, model);
        CheckUnchanged();
    }

    /// <summary>Refuses the checkpoint when the file changed since it was opened and verified
    /// (<see cref="CheckpointFile.CheckUnchanged"/>): called after every section that sets state, and by the engine after the
    /// last one, so nothing read from a rewritten file is trained on.</summary>
    public void CheckUnchanged() => CheckpointFile.CheckUnchanged(fs);

    /// <summary>Restores the optimizer. A format-1 file holds TorchSharp's AdamW state over the same groups: it is
    /// loaded into such an optimizer and taken over.</summary>
    public void LoadOptimizer(MaeFlatAdamW optimizer, MaeFlatParameters flat)
    {
        Stage(1, "the optimizer");
        if (FormatVersion >= 2)
        {
            optimizer.Load(r, Path);
            CheckUnchanged();
            return;
        }
        var groups = flat.Groups.Select(g => new AdamW.ParamGroup(g.Parameters.Select(p => p.Parameter), lr: 1e-3, weight_decay: g.WeightDecay)).ToList();
        using var legacy = optim.AdamW(groups);
        CheckpointFile.LoadOptimizer(r, Path, legacy);
        optimizer.LoadFrom(legacy, Path);
        CheckUnchanged();
    }

    /// <summary>The CPU generator state (a uint8 tensor owned by the caller).</summary>
    public Tensor ReadRngState()
    {
        Stage(2, "the generator state");
        return CheckpointFile.ReadRngState(r);
    }

    public (List<float> StepLosses, List<double> EpochLosses) ReadHistory()
    {
        Stage(3, "the loss history");
        int n = CheckpointFile.ReadCount(r, sizeof(float), "the step-loss history");
        var steps = new List<float>(n);
        for (int i = 0; i < n; i++) steps.Add(r.ReadSingle());
        int m = CheckpointFile.ReadCount(r, sizeof(double), "the epoch-loss history");
        var epochs = new List<double>(m);
        for (int i = 0; i < m; i++) epochs.Add(r.ReadDouble());
        return (steps, epochs);
    }

    public void Dispose()
    {
        r.Dispose();
        fs.Dispose();
    }
}
