//! `strata history`.

use strata::ops::history::history;

use crate::render::{ago, docker_size, table};

/// Arguments of `strata history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: a tag or an image id.
    pub image: String,
    /// Do not cut the CREATED BY column.
    #[arg(long)]
    pub no_trunc: bool,
    /// `table`, or `json`: one JSON object per entry and line, with docker's keys.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the image id.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Prints the history newest first, as `docker history`: IMAGE (the id on the newest entry,
/// `<missing>` on the others, as for a pulled image), CREATED, CREATED BY, SIZE, COMMENT.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let history = history(ctx, &args.image)?;
    let short_id = history.id.short(12);
    if args.quiet {
        println!("{short_id}");
        return Ok(0);
    }
    let id = |i: usize| match (i, args.no_trunc) {
        (0, true) => history.id.to_string(),
        (0, false) => short_id.clone(),
        _ => "<missing>".to_string(),
    };
    let since = |e: &strata::ops::history::Entry| e.created_unix.map_or("N/A".into(), ago);
    if args.format == "json" {
        for (i, e) in history.entries.iter().enumerate() {
            let line = serde_json::json!({
                "ID": id(i),
                "CreatedAt": e.created.clone().unwrap_or_default(),
                "CreatedSince": since(e),
                "CreatedBy": e.created_by,
                "Size": docker_size(e.size),
                "Comment": e.comment,
            });
            println!("{line}");
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = history
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // One line per entry: a heredoc's newlines and tabs become spaces.
            let created_by = e.created_by.replace(['\n', '\t'], " ");
            vec![
                id(i),
                since(e),
                match args.no_trunc {
                    true => created_by,
                    false => table::ellipsis(&created_by, 45),
                },
                docker_size(e.size),
                e.comment.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &rows
        )
    );
    Ok(0)
}
