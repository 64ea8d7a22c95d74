//! Go's `text/tabwriter` layout, which ctr's tables are made with: cells
//! end at a tab, a line's text after its last tab is not aligned, and a
//! column's width is set per block of consecutive lines that have a cell in
//! it. Output must match containerd's byte for byte (trailing padding
//! included), so this follows Go's algorithm rather than a simpler one.

/// Layout parameters, named as Go's `tabwriter.NewWriter` arguments.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub minwidth: usize,
    pub tabwidth: usize,
    pub padding: usize,
    pub padchar: char,
}

/// `tabwriter.NewWriter(w, 4, 8, 4, ' ', 0)`: containers, tasks.
pub const WIDE: Layout = Layout {
    minwidth: 4,
    tabwidth: 8,
    padding: 4,
    padchar: ' ',
};
/// `tabwriter.NewWriter(w, 1, 8, 1, ' ', 0)`: images, namespaces, snapshots, leases.
pub const TIGHT: Layout = Layout {
    minwidth: 1,
    tabwidth: 8,
    padding: 1,
    padchar: ' ',
};
/// `tabwriter.NewWriter(w, 1, 8, 1, '\t', 0)`: content.
pub const TABS: Layout = Layout {
    minwidth: 1,
    tabwidth: 8,
    padding: 1,
    padchar: '\t',
};

/// urfave/cli's help tables: `tabwriter.NewWriter(w, 1, 8, 2, ' ', 0)`.
pub const HELP: Layout = Layout {
    minwidth: 1,
    tabwidth: 8,
    padding: 2,
    padchar: ' ',
};

/// Lay out `text` (lines of tab-terminated cells) as Go's tabwriter does
/// on Flush.
pub fn format(layout: Layout, text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    block(layout, &lines, 0, lines.len(), &mut widths, &mut out);
    out
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

fn block(
    layout: Layout,
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(layout, lines, line0, this, widths, out);
        line0 = this;
        let mut w = layout.minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + layout.padding);
            this += 1;
        }
        widths.push(w);
        block(layout, lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(layout, lines, line0, line1, widths, out);
}

fn write_lines(
    layout: Layout,
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                pad(layout, width(cell), widths[j], out);
            }
        }
        if i + 1 != lines.len() {
            out.push('\n');
        }
    }
}

fn pad(layout: Layout, textw: usize, cellw: usize, out: &mut String) {
    if layout.padchar == '\t' {
        let tw = layout.tabwidth;
        let cellw = cellw.div_ceil(tw) * tw;
        let n = cellw - textw;
        out.extend(std::iter::repeat_n('\t', n.div_ceil(tw)));
    } else {
        out.extend(std::iter::repeat_n(
            layout.padchar,
            cellw.saturating_sub(textw),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_table_as_ctr() {
        // Recorded from containerd 1.6's `ctr t ls`.
        let s = format(WIDE, "TASK\tPID\tSTATUS\t\nd1\t19395\tRUNNING\n");
        assert_eq!(s, "TASK    PID      STATUS    \nd1      19395    RUNNING\n");
    }

    #[test]
    fn content_table_with_tabs() {
        let d = format!("sha256:{}", "a".repeat(64));
        let s = format(
            TABS,
            &format!("DIGEST\tSIZE\tAGE\tLABELS\n{d}\t349B\t4 seconds\tx=y\n"),
        );
        assert_eq!(
            s,
            format!("DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\tLABELS\n{d}\t349B\t4 seconds\tx=y\n")
        );
    }

    #[test]
    fn snapshots_with_empty_parent() {
        let k = format!("sha256:{}", "b".repeat(64));
        // Recorded from `ctr snapshots ls`.
        let s = format(TIGHT, &format!("KEY\tPARENT\tKIND\t\n{k}\t\tCommitted\t\n"));
        let want = format!(
            "KEY{}PARENT KIND      \n{k}        Committed \n",
            " ".repeat(69)
        );
        assert_eq!(s, want);
    }
}
