using Mae.MLNet.Input;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;

namespace Mae.MLNet.Evaluation;

/// <summary>
/// The linear evaluation of frozen features on ML.NET data: each feature standardised (the paper's probe puts a
/// BatchNorm without affine before its linear layer), then multinomial logistic regression (ML.NET's L-BFGS maximum
/// entropy, no L1, as the paper's probe has none) with the L2 that scores best on a held-out part of the training rows
/// (<see cref="ChooseOnHeldOut{T}"/>), refitted on all of them and scored on the test rows. One fixed L2 is fair to no two
/// kinds of features: ML.NET's default 1 suited 512 MAE features of 3 000 CIFAR-10 photos and overfitted their 3 072 raw
/// pixels by 5 points, and the best L2 per row shrank from 1e-3 to 1e-6 as the photos grew from 3 000 to 50 000
/// (docs/results.md). The views are cached (unless <see cref="Options.CacheInputs"/> says they are already): the probe
/// reads them several times, and every read of a lazy featurizer would run the encoder again.
/// </summary>
public static partial class MaeLinearProbe
{
    /// <summary>The probe's accuracy on the test rows (micro and macro), the L2 per training row it chose, each candidate's
    /// held-out accuracy in the order tried (the search stops at the first fall), and the model refitted on all the
    /// training rows (label mapping, standardisation, classifier).</summary>
    public sealed record Result(double Accuracy, double MacroAccuracy, double L2PerRow,
        IReadOnlyList<Trial<double>> HeldOut, ITransformer Model)
    {
        public override string ToString() => $"{Accuracy:P2} at L2 {L2PerRow:0e0} per row (held-out: " +
            string.Join(", ", HeldOut.Select(t => $"{t.Candidate:0e0} {t.Accuracy:P1}")) + ")";
    }

    /// <summary>
    /// Fits and scores the probe. <paramref name="featureColumnName"/> is a known-size vector of Single (e.g.
    /// <c>MaeFeaturize</c>'s output or raw pixels) in both views; <paramref name="labelColumnName"/> any column
    /// <c>MapValueToKey</c> takes (mapped by its training values). Every feature value must be finite: the first that is
    /// not is named by view and row. Deterministic for a given <see cref="Options.Seed"/> and
    /// <see cref="Options.Threads"/>, on any machine.
    /// </summary>
    public static Result Evaluate(IDataView train, IDataView test, string featureColumnName = "Features", string labelColumnName = "Label",
        Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        options = (options ?? new Options()).Validate();
        // A context of its own: the accuracy depends on the features, the options and the seed only.
        var ml = new MLContext(options.Seed);
        var select = ml.Transforms.SelectColumns(labelColumnName, featureColumnName);
        IDataView Prepared(IDataView data, string what)
        {
            var selected = select.Fit(Checked(data, featureColumnName, labelColumnName, what)).Transform(data);
            return options.CacheInputs ? ml.Data.Cache(selected) : selected;
        }
        var (trainRead, testRead) = (Prepared(train, "train"), Prepared(test, "test"));
        // One label mapping, fitted on all the training rows, for the held-out fits, the refit and the scoring alike: a
        // row whose label it does not know would get a missing key, and ML.NET's fit and evaluation skip such rows without
        // a word (a test set with unseen classes scored 100 % where half its rows could not be right), so none may come.
        var labels = ml.Transforms.Conversion.MapValueToKey(labelColumnName).Fit(trainRead);
        var (trainKeyed, testKeyed) = (labels.Transform(trainRead), labels.Transform(testRead));
        long trainRows = CheckValues(trainKeyed, trainRead, featureColumnName, labelColumnName, "train");
        CheckValues(testKeyed, testRead, featureColumnName, labelColumnName, "test");

        IEstimator<ITransformer> Probe(double l2) => ml.Transforms.NormalizeMeanVariance(featureColumnName)
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
            {
                LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, L1Regularization = 0, L2Regularization = (float)l2,
                // A fixed count, not the machine's cores: ML.NET sums the gradient over that many equal chunks of rows
                // held in memory, so the figures are the same on any machine; one thread streams the cached rows at
                // every evaluation instead (3.5× slower on 3 000 photos' raw pixels, docs/results.md).
                NumberOfThreads = options.Threads,
            }));
        double Accuracy(ITransformer model, IDataView data)
            => ml.MulticlassClassification.Evaluate(model.Transform(data), labelColumnName).MicroAccuracy;

        // The split's parts are filters over the (cached) training view, not caches of their own: the solver reads its rows
        // once into memory of its own (ML.NET's L-BFGS does with more than one thread), so a third copy would buy nothing.
        var split = ml.Data.TrainTestSplit(trainKeyed, testFraction: options.HeldOutFraction, seed: options.Seed);
        var (fit, heldOut) = (split.TrainSet, split.TestSet);
        long fitRows = DataViewRows.Count(fit), heldOutRows = trainRows - fitRows;   // the split is a partition
        // ML.NET's L-BFGS minimises (Σ loss + ½·L2·‖w‖²) / rows, so its L2 is the per-row one times the rows fitted.
        var choice = heldOutRows > 0 && fitRows > 0 && options.L2PerRow.Count > 1
            ? ChooseOnHeldOut(options.L2PerRow, l2 => Accuracy(Probe(l2 * fitRows).Fit(fit), heldOut))
            : new Choice<double>(options.L2PerRow[0], Array.Empty<Trial<double>>());
        var model = labels.Append(Probe(choice.Chosen * trainRows).Fit(trainKeyed));
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(testRead), labelColumnName);
        return new Result(metrics.MicroAccuracy, metrics.MacroAccuracy, choice.Chosen, choice.Trials, model);
    }

    static IDataView Checked(IDataView data, string featureColumnName, string labelColumnName, string what)
    {
        var schema = data.Schema;
        string Available() => string.Join(", ", schema.Select(c => $"'{c.Name}'"));
        if (schema.GetColumnOrNull(featureColumnName) is not DataViewSchema.Column feature)
            throw new ArgumentOutOfRangeException(nameof(featureColumnName), $"Feature column '{featureColumnName}' was not found in the {what} data. Available columns: {Available()}.");
        if (feature.Type is not VectorDataViewType { ItemType: NumberDataViewType item, Size: > 0 } || item.RawType != typeof(float))
            throw new ArgumentOutOfRangeException(nameof(featureColumnName),
                $"Feature column '{featureColumnName}' of the {what} data has type {feature.Type}; the linear probe expects a known-size vector of Single.");
        if (schema.GetColumnOrNull(labelColumnName) is not DataViewSchema.Column label)
            throw new ArgumentOutOfRangeException(nameof(labelColumnName), $"Label column '{labelColumnName}' was not found in the {what} data. Available columns: {Available()}.");
        if (label.Type is VectorDataViewType)
            throw new ArgumentOutOfRangeException(nameof(labelColumnName),
                $"Label column '{labelColumnName}' of the {what} data has type {label.Type}; the linear probe expects one label per row (text, a number, a boolean or a key).");
        return data;
    }

    /// <summary>The view's row count, after checking that it has rows, that every feature value is finite and that every
    /// row's label is one the mapping fitted on the training rows knows (<paramref name="keyed"/>: the view with its label
    /// mapped to keys; <paramref name="original"/>: the same rows before, to name an unknown label).</summary>
    static long CheckValues(IDataView keyed, IDataView original, string featureColumnName, string labelColumnName, string what)
    {
        var column = keyed.Schema[featureColumnName];
        var labelColumn = keyed.Schema[labelColumnName];
        var buffer = default(VBuffer<float>);
        long row = 0;
        using (var cursor = keyed.GetRowCursor(new[] { column, labelColumn }))
        {
            var get = cursor.GetGetter<VBuffer<float>>(column);
            var key = KeyColumn.Reader(cursor, labelColumn);
            for (; cursor.MoveNext(); row++)
            {
                if (key() == 0)
                    throw new ArgumentException(what == "train"
                        ? $"Label column '{labelColumnName}' of the train data has no value at row {row} ({LabelText(original, labelColumnName, row)}); the linear probe expects a label on every row."
                        : $"Label column '{labelColumnName}' of the test data holds {LabelText(original, labelColumnName, row)} at row {row}, which no training row has " +
                          $"(the training data has {(labelColumn.Type as KeyDataViewType)?.Count} labels); the probe can only predict those, so that row could not be scored.", what);
                get(ref buffer);
                var values = buffer.GetValues();
                for (int i = 0; i < values.Length; i++)
                    if (!float.IsFinite(values[i]))
                        throw new ArgumentException($"Feature column '{featureColumnName}' of the {what} data holds {values[i]} at row {row}, " +
                                                    $"value {(buffer.IsDense ? i : buffer.GetIndices()[i])}; the linear probe expects finite values.", what);
            }
        }
        if (row == 0) throw new ArgumentException($"The {what} data has no rows; the linear probe needs labelled features.", what);
        return row;
    }

    /// <summary>The label of <paramref name="row"/> as text, for a message.</summary>
    static string LabelText(IDataView data, string labelColumnName, long row)
    {
        var column = data.Schema[labelColumnName];
        using var cursor = data.GetRowCursor(new[] { column });
        for (long i = 0; i <= row; i++) cursor.MoveNext();
        return (string)typeof(MaeLinearProbe).GetMethod(nameof(ValueText), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(column.Type.RawType).Invoke(null, new object[] { cursor, column })!;
    }

    static string ValueText<T>(DataViewRow row, DataViewSchema.Column column)
    {
        T value = default!;
        row.GetGetter<T>(column)(ref value);
        return $"'{value}'";
    }

    /// <summary>How <see cref="Evaluate"/> chooses and fits.</summary>
    public sealed record Options
    {
        /// <summary>The L2 candidates per training row, strongest first (the search stops at the first fall of the held-out
        /// accuracy, so a weak L2's slow fit is only made when it pays). The raw pixels of CIFAR-10 chose 1e-1 (3 000 photos)
        /// and 1e-2 (10 000 and 50 000); nano32's MAE features 1e-3 (3 000 photos), 1e-5 (10 000), 1e-6 and 1e-7 (50 000,
        /// from a 42- and a 66-epoch encoder). The list ends one step past the largest choice so that its peak is seen (the
        /// 66-epoch encoder's held-out accuracy: 69.6 / 69.7 / 69.5 % at 1e-6 / 1e-7 / 1e-8; docs/results.md).</summary>
        public IReadOnlyList<double> L2PerRow { get; init; } = DefaultL2PerRow;
        public static readonly IReadOnlyList<double> DefaultL2PerRow = new[] { 1, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8 };
        /// <summary>The part of the training rows held out to choose the L2 (then refitted on all).</summary>
        public double HeldOutFraction { get; init; } = 0.1;
        /// <summary>Seeds the held-out split and ML.NET's context.</summary>
        public int Seed { get; init; }
        /// <summary>ML.NET's L-BFGS threads: it sums the gradient over this many equal chunks of rows, in order, so a fixed
        /// count gives the same figures on any machine (and uses up to this many cores).</summary>
        public int Threads { get; init; } = 4;

        /// <summary>Whether <see cref="Evaluate"/> caches the two views (<c>ml.Data.Cache</c>) before it reads them. It reads
        /// each several times (the checks, the standardisation, the held-out split, each L2's fit, the scoring), and each read
        /// of a lazy view runs its transforms again (a featurizer: the encoder). Set false when both views are cached or held
        /// in memory already, e.g. shared with <see cref="MaeKnnProbe"/>: the features are then held once, not twice.</summary>
        public bool CacheInputs { get; init; } = true;

        /// <summary>Throws unless every setting is usable; returns this.</summary>
        public Options Validate()
        {
            if (L2PerRow is null || L2PerRow.Count == 0 || L2PerRow.Any(l2 => !(l2 >= 0 && double.IsFinite(l2))))
                throw new ArgumentOutOfRangeException(nameof(L2PerRow), $"L2PerRow must hold at least one finite value ≥ 0; got [{string.Join(", ", L2PerRow ?? Array.Empty<double>())}].");
            if (!(HeldOutFraction > 0 && HeldOutFraction < 1))
                throw new ArgumentOutOfRangeException(nameof(HeldOutFraction), HeldOutFraction, $"HeldOutFraction must be between 0 and 1 (exclusive); got {HeldOutFraction}.");
            if (Threads < 1 || Threads > 256)
                throw new ArgumentOutOfRangeException(nameof(Threads), Threads, $"Threads must be between 1 and 256; got {Threads}.");
            return this;
        }
    }
}
