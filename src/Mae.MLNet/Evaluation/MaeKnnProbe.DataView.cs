using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Evaluation;

public static partial class MaeKnnProbe
{
    /// <summary>
    /// The kNN evaluation (<see cref="Evaluate(Tensor, IReadOnlyList{long}, Tensor, IReadOnlyList{long}, IReadOnlyList{int}?, double, int)"/>)
    /// on ML.NET data: <paramref name="featureColumnName"/> is a known-size Single vector column (e.g. <c>MaeFeaturize</c>'s
    /// output or raw pixels) and <paramref name="labelColumnName"/> a key column (<c>MapValueToKey</c>; map train and test
    /// with the same fitted transformer; rows with a missing key are skipped) or an unsigned/signed integer column of class
    /// indices ≥ 0. Both views are read once into memory (rows × width floats).
    /// </summary>
    public static MaeKnnProbe.Result Evaluate(IDataView train, IDataView test, string featureColumnName = "Features", string labelColumnName = "Label",
        IReadOnlyList<int>? ks = null, double temperature = DefaultTemperature, int chunkSize = 256)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        var (trainFeatures, trainLabels, trainKeys) = Read(train, featureColumnName, labelColumnName, "train");
        var (testFeatures, testLabels, testKeys) = Read(test, featureColumnName, labelColumnName, "test");
        if (trainFeatures.Width != testFeatures.Width)
            throw new ArgumentException(
                $"Feature column '{featureColumnName}' has {trainFeatures.Width} values per row in the train data but {testFeatures.Width} in the test data; expected the same.", nameof(test));
        if (trainKeys != testKeys)
            throw new ArgumentException(
                $"Label column '{labelColumnName}' has {Describe(trainKeys)} in the train data but {Describe(testKeys)} in the test data; map both with the same fitted MapValueToKey.", nameof(test));
        using var scope = NewDisposeScope();
        var trainX = tensor(trainFeatures.Values, trainLabels.Count, trainFeatures.Width);
        var testX = tensor(testFeatures.Values, testLabels.Count, testFeatures.Width);
        return Evaluate(trainX, trainLabels, testX, testLabels, ks, temperature, chunkSize);
    }

    static string Describe(ulong? keys) => keys is ulong k ? $"{k} key values" : "plain class indices";

    /// <summary>Features (row-major) and 0-based labels of the labelled rows, and the key count when the label is a key.</summary>
    static ((float[] Values, int Width) Features, List<long> Labels, ulong? KeyCount) Read(IDataView data, string featureColumnName, string labelColumnName, string what)
    {
        var schema = data.Schema;
        string Available() => string.Join(", ", schema.Select(c => $"'{c.Name}'"));
        if (schema.GetColumnOrNull(featureColumnName) is not DataViewSchema.Column featureColumn)
            throw new ArgumentOutOfRangeException(nameof(featureColumnName), $"Feature column '{featureColumnName}' was not found in the {what} data. Available columns: {Available()}.");
        if (featureColumn.Type is not VectorDataViewType { ItemType: NumberDataViewType item, Size: > 0 } vector || item.RawType != typeof(float))
            throw new ArgumentOutOfRangeException(nameof(featureColumnName),
                $"Feature column '{featureColumnName}' has type {featureColumn.Type}; the kNN probe expects a known-size vector of Single.");
        if (schema.GetColumnOrNull(labelColumnName) is not DataViewSchema.Column labelColumn)
            throw new ArgumentOutOfRangeException(nameof(labelColumnName), $"Label column '{labelColumnName}' was not found in the {what} data. Available columns: {Available()}.");
        var keyType = labelColumn.Type as KeyDataViewType;
        var raw = labelColumn.Type.RawType;
        bool integer = raw == typeof(byte) || raw == typeof(ushort) || raw == typeof(uint) || raw == typeof(ulong) || raw == typeof(int) || raw == typeof(long);
        if (keyType is null && !integer)
            throw new ArgumentOutOfRangeException(nameof(labelColumnName),
                $"Label column '{labelColumnName}' has type {labelColumn.Type}; the kNN probe expects a key type (MapValueToKey) or integer class indices.");

        int width = vector.Size;
        long? rows = data.GetRowCount();
        var values = new List<float>(rows is long n && n * width <= int.MaxValue ? (int)(n * width) : 0);
        var labels = new List<long>(rows is long m && m <= int.MaxValue ? (int)m : 0);
        var buffer = default(VBuffer<float>);
        using (var cursor = data.GetRowCursor(new[] { featureColumn, labelColumn }))
        {
            var getFeatures = cursor.GetGetter<VBuffer<float>>(featureColumn);
            Func<long> getLabel = keyType is not null ? KeyIndex(KeyColumn.Reader(cursor, labelColumn)) : IntegerReader(cursor, labelColumn, raw);
            long row = 0;
            while (cursor.MoveNext())
            {
                long label = getLabel();
                if (label < 0)
                {
                    if (keyType is not null) { row++; continue; }   // missing key
                    throw new ArgumentOutOfRangeException(nameof(labelColumnName), label, $"Label column '{labelColumnName}' row {row} of the {what} data is {label}; class indices must be ≥ 0.");
                }
                getFeatures(ref buffer);
                foreach (var v in buffer.DenseValues()) values.Add(v);
                labels.Add(label);
                row++;
            }
        }
        if (labels.Count == 0)
            throw new ArgumentException($"The {what} data has no rows with a label; the kNN probe needs labelled features.", what);
        return ((values.ToArray(), width), labels, keyType?.Count);
    }

    static Func<long> KeyIndex(Func<ulong> key) => () => (long)key() - 1;   // keys are 1-based, 0 is missing

    static Func<long> IntegerReader(DataViewRow row, DataViewSchema.Column column, Type raw)
    {
        if (raw == typeof(byte)) { var g = row.GetGetter<byte>(column); byte v = 0; return () => { g(ref v); return v; }; }
        if (raw == typeof(ushort)) { var g = row.GetGetter<ushort>(column); ushort v = 0; return () => { g(ref v); return v; }; }
        if (raw == typeof(uint)) { var g = row.GetGetter<uint>(column); uint v = 0; return () => { g(ref v); return v; }; }
        if (raw == typeof(ulong)) { var g = row.GetGetter<ulong>(column); ulong v = 0; return () => { g(ref v); return checked((long)v); }; }
        if (raw == typeof(int)) { var g = row.GetGetter<int>(column); int v = 0; return () => { g(ref v); return v; }; }
        { var g = row.GetGetter<long>(column); long v = 0; return () => { g(ref v); return v; }; }
    }
}
