using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// What the MAE classifiers in an ML.NET pipeline share (<see cref="MaeClassifierTransformer"/>,
/// <see cref="MaeAttentiveProbeTransformer"/>): read the image column, add <c>Score</c> (a Single vector of class
/// probabilities, one per key value of the training label, slot names from its key values) and <c>PredictedLabel</c>
/// (the training label's key type and key values, so <c>MapKeyToValue</c> gives the class names back), as ML.NET's
/// multiclass trainers do. Lazy and batched; row by row under <c>PredictionEngine</c>.
/// </summary>
public abstract class MaeImageClassifierTransformer : ITransformer
{
    private protected MaeImageClassifierTransformer(MaeConfig config, PixelNormalization normalization, string inputColumnName,
        string labelColumnName, string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType,
        DataViewSchema.Annotations labelAnnotations, int numClasses, int batchSize, MaeDevice device)
    {
        Normalization = normalization.Validate(config.InChannels);
        InputColumnName = inputColumnName;
        LabelColumnName = labelColumnName;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
        LabelType = labelType;
        LabelAnnotations = labelAnnotations;
        BatchSize = batchSize;
        Device = device;
        Outputs = MakeOutputs(scoreColumnName, predictedLabelColumnName, labelType, labelAnnotations, numClasses);
    }

    /// <summary>How column values become model inputs: <c>(value · Scale − Mean[c]) / Std[c]</c>.</summary>
    public PixelNormalization Normalization { get; }
    public string InputColumnName { get; }
    /// <summary>The training label column (its key values name the classes).</summary>
    public string LabelColumnName { get; }
    public string ScoreColumnName { get; }
    public string PredictedLabelColumnName { get; }
    /// <summary>The key type of the training label (and of <see cref="PredictedLabelColumnName"/>).</summary>
    public KeyDataViewType LabelType { get; }
    /// <summary>The training label column's annotations (its KeyValues hold the class names).</summary>
    public DataViewSchema.Annotations LabelAnnotations { get; }
    public abstract int NumClasses { get; }
    public int BatchSize { get; }
    public MaeDevice Device { get; }
    /// <summary>The schema it was fitted on (needed to save it as ML.NET's ONNX and multiclass transformers).</summary>
    public DataViewSchema? InputSchema { get; internal init; }
    /// <summary>The caller's ML.NET environment, from the catalog that made the estimator (for saving).</summary>
    internal MaeHost? Host { get; init; }
    /// <summary>Image batch → class probabilities.</summary>
    private protected abstract ITensorFunction Runner { get; }
    internal IReadOnlyList<OutputColumn> Outputs { get; }

    /// <summary>The class names from the label's key values (text), or null when it has none.</summary>
    public string[]? ClassNames() => KeyValueNames(LabelAnnotations);

    /// <summary>The text KeyValues of a label column's annotations, or null.</summary>
    internal static string[]? KeyValueNames(DataViewSchema.Annotations labelAnnotations)
    {
        var kv = labelAnnotations.Schema.GetColumnOrNull("KeyValues");
        if (kv is not DataViewSchema.Column column || column.Type is not VectorDataViewType { ItemType: TextDataViewType }) return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        labelAnnotations.GetValue("KeyValues", ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    /// <summary>A multiclass trainer's output columns: Score (class probabilities, slot names from the label's key
    /// values) and PredictedLabel (their argmax, in the label's key type).</summary>
    static IReadOnlyList<OutputColumn> MakeOutputs(string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType,
        DataViewSchema.Annotations labelAnnotations, int numClasses)
    {
        var scoreAnnotations = new DataViewSchema.Annotations.Builder();
        var names = KeyValueNames(labelAnnotations);
        if (names is not null && names.Length == numClasses)
        {
            ValueGetter<VBuffer<ReadOnlyMemory<char>>> getter = (ref VBuffer<ReadOnlyMemory<char>> value)
                => value = new VBuffer<ReadOnlyMemory<char>>(names.Length, names.Select(n => n.AsMemory()).ToArray());
            scoreAnnotations.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, numClasses), getter);
        }
        ValueGetter<ReadOnlyMemory<char>> kind = (ref ReadOnlyMemory<char> v) => v = "MulticlassClassification".AsMemory();
        ValueGetter<ReadOnlyMemory<char>> valueKind = (ref ReadOnlyMemory<char> v) => v = "Score".AsMemory();
        scoreAnnotations.Add("ScoreColumnKind", TextDataViewType.Instance, kind);
        scoreAnnotations.Add("ScoreValueKind", TextDataViewType.Instance, valueKind);
        var predictedAnnotations = new DataViewSchema.Annotations.Builder();
        predictedAnnotations.Add(labelAnnotations, name => name == "KeyValues");
        return new[]
        {
            OutputColumn.Vector(scoreColumnName, 0, numClasses, scoreAnnotations.ToAnnotations()),
            OutputColumn.ArgMaxKey(predictedLabelColumnName, labelType, 0, numClasses, predictedAnnotations.ToAnnotations()),
        };
    }

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => ImageColumnMapping.OutputSchema(inputSchema, InputColumnName, Runner, Outputs);

    public IDataView Transform(IDataView input) => ImageColumnMapping.Transform(input, InputColumnName, Runner, Outputs, BatchSize);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => ImageColumnMapping.RowMapper(inputSchema, InputColumnName, Runner, Outputs);

    /// <summary>The ML.NET transformers (ONNX graph + multiclass head) the zip holds, bound to <paramref name="inputSchema"/>.</summary>
    private protected abstract TransformerChain<ITransformer> BuildPersisted(MaeHost host, DataViewSchema inputSchema);

    /// <summary>Saved as ML.NET's own transformers: an <c>OnnxTransformer</c> for the network up to the pooled features,
    /// and ML.NET's multiclass model (the one <c>LbfgsMaximumEntropy</c> trains) holding the head's weights. Loading the
    /// zip gives those transformers, which score without Mae.MLNet or libtorch.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        var inputSchema = InputSchema
            ?? throw new InvalidOperationException($"This {GetType().Name} was not made by Fit, so its training schema is unknown and it cannot be saved.");
        var host = Host
            ?? throw new InvalidOperationException($"This {GetType().Name} was not made through an ML.NET catalog (mlContext.MulticlassClassification.Trainers), so it has no MLContext to save in.");
        ((ICanSaveModel)BuildPersisted(host, inputSchema)).Save(ctx);
    }
}
